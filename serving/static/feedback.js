// Relevance feedback on the search page (issue 29): each result card gets two buttons,
// "relevant" and "not relevant", which POST /feedback {query_id, image_id, relevant}.
// app.js renders the cards and leaves the search's query id on #results (data-query-id);
// this file only watches #results, so the page's other scripts need not know about it.
"use strict";

(() => {
  const results = document.getElementById("results");
  if (!results) return;

  function headers() {
    const key = document.getElementById("api-key");
    const value = key ? key.value.trim() : "";
    return { "Content-Type": "application/json", ...(value ? { Authorization: `Bearer ${value}` } : {}) };
  }

  async function send(card, imageId, relevant, status) {
    const queryId = results.dataset.queryId;
    if (!queryId) { status.textContent = "feedback is off"; return; }
    const response = await fetch("/feedback", {
      method: "POST",
      headers: headers(),
      body: JSON.stringify({ query_id: queryId, image_id: imageId, relevant }),
    });
    if (!response.ok) {
      let text = `${response.status}`;
      try { text = (await response.json()).error || text; } catch (_) { /* not JSON */ }
      status.textContent = text;
      status.classList.add("error");
      return;
    }
    card.dataset.feedback = relevant ? "relevant" : "not-relevant";
    status.classList.remove("error");
    status.textContent = relevant ? "marked relevant" : "marked not relevant";
  }

  function button(label, title, onClick) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    b.title = title;
    b.setAttribute("aria-label", title);
    b.addEventListener("click", onClick);
    return b;
  }

  function decorate(card) {
    if (card.querySelector(".feedback")) return;
    const img = card.querySelector("img");
    if (!img) return;
    const imageId = img.alt;
    const bar = document.createElement("div");
    bar.className = "feedback";
    const status = document.createElement("span");
    status.className = "feedback-status";
    status.setAttribute("data-testid", "feedback-status");
    const yes = button("\u2713", "relevant", () => send(card, imageId, true, status));
    const no = button("\u2717", "not relevant", () => send(card, imageId, false, status));
    yes.setAttribute("data-testid", "mark-relevant");
    no.setAttribute("data-testid", "mark-not-relevant");
    bar.append(yes, no, status);
    card.append(bar);
  }

  new MutationObserver(() => {
    results.querySelectorAll("[data-testid=result]").forEach(decorate);
  }).observe(results, { childList: true });
})();
