// DOVE search page: calls the service's JSON API; never sends anything but the user's input.
"use strict";

const $ = (id) => document.getElementById(id);

function authHeaders() {
  const key = $("api-key").value.trim();
  if (key) document.cookie = `dove_api_key=${encodeURIComponent(key)}; path=/; SameSite=Strict`;
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function errorText(response) {
  try {
    const body = await response.json();
    const item = Array.isArray(body) ? body[0] : body;
    return item.error || JSON.stringify(body);
  } catch (_) {
    return `${response.status} ${response.statusText}`;
  }
}

function setStatus(el, text, isError) {
  el.textContent = text;
  el.classList.toggle("error", Boolean(isError));
}

async function loadInfo() {
  const response = await fetch("/info", { method: "POST", headers: { ...authHeaders(), "Content-Type": "application/json" }, body: "{}" });
  if (!response.ok) { $("info").textContent = `info: ${await errorText(response)}`; return; }
  const info = await response.json();
  $("info").textContent = `model ${info.model_name} v${info.model_version} (${info.alias}, ` +
    `${info.family === "dual" ? "dual encoder" : "DOVE"}), ` +
    `data ${info.data_version.slice(0, 12)}, ${info.n_images} images, ${info.n_captions} captions`;
}

function card(hit) {
  const div = document.createElement("div");
  div.className = "card";
  div.setAttribute("data-testid", "result");
  const img = document.createElement("img");
  img.src = hit.thumbnail_url;
  img.alt = hit.image_id;
  img.loading = "lazy";
  const score = document.createElement("div");
  score.className = "score";
  score.textContent = `score ${hit.score.toFixed(4)}`;
  const id = document.createElement("div");
  id.className = "id";
  id.textContent = hit.label ? `${hit.image_id} · ${hit.label}` : hit.image_id;
  div.append(img, score, id);
  return div;
}

$("text-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const status = $("text-status");
  setStatus(status, "searching...");
  $("results").replaceChildren();
  const started = performance.now();
  // map (issue 28): with geo metadata the map adds format "geojson" and a drawn bbox
  const geo = window.doveMap ? await window.doveMap.searchFields() : {};
  const response = await fetch("/search_images", {
    method: "POST",
    headers: { ...authHeaders(), "Content-Type": "application/json" },
    body: JSON.stringify({ query: $("query").value, k: Number($("k").value), ...geo }),
  });
  if (!response.ok) { setStatus(status, await errorText(response), true); return; }
  const body = await response.json();
  $("results").dataset.queryId = body.query_id || "";  // for feedback.js
  const results = window.doveMap ? window.doveMap.results(body) : body.results;
  if (window.doveMap) window.doveMap.show(body);  // /map
  $("results").replaceChildren(...results.map(card));
  const found = `${results.length} images in ${Math.round(performance.now() - started)} ms`;
  const unknown = body.unknown_words || [];
  setStatus(status, unknown.length
    ? `${found}; words the model does not know (ignored): ${unknown.join(", ")}`
    : found);
});

$("image-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const status = $("image-status");
  const file = $("upload").files[0];
  if (!file) { setStatus(status, "choose an image first", true); return; }
  setStatus(status, "describing...");
  $("captions").replaceChildren();
  const form = new FormData();
  form.append("image", file);
  form.append("k", "5");
  const response = await fetch("/search_texts", { method: "POST", headers: authHeaders(), body: form });
  if (!response.ok) { setStatus(status, await errorText(response), true); return; }
  const body = await response.json();
  $("captions").replaceChildren(...body.results.map((hit) => {
    const li = document.createElement("li");
    li.setAttribute("data-testid", "caption");
    li.textContent = `${hit.caption} (${hit.score.toFixed(4)})`;
    return li;
  }));
  setStatus(status, `${body.results.length} captions`);
});

loadInfo();
