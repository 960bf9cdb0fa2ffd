// DOVE search page, the map (issue 28): result footprints and their thumbnails on a Leaflet
// map (vendored from npm at build time: serving/static/vendor/leaflet), and a box drawn on it
// filters the search (the request's `bbox`). Shown only when the served index has footprints
// (an archive ingested with `dove archive ingest`). The basemap is serve.map.basemap_url;
// without one (the default, offline) the footprints and thumbnails are drawn on a blank map.
// app.js asks `doveMap.searchFields()` for the request's extra fields and hands each response
// to `doveMap.show(body)`; nothing here talks to any host but the service (and the basemap's).
"use strict";

window.doveMap = (() => {
  const el = (id) => document.getElementById(id);
  const state = { map: null, config: null, loading: null, footprints: null, box: null, bbox: null };

  function keyHeaders() {
    const key = el("api-key") ? el("api-key").value.trim() : "";
    return key ? { Authorization: `Bearer ${key}` } : {};
  }

  // the map's settings from the service, once (again after a refusal: an API key typed later)
  function load() {
    if (!state.loading) {
      state.loading = fetch("/ui/map.json", { headers: keyHeaders() })
        .then((r) => (r.ok ? r.json() : null))
        .catch(() => null)
        .then((config) => {
          if (config === null) state.loading = null;
          else if (config.geo && window.L) create(config);
          return config;
        });
    }
    return state.loading;
  }

  function create(config) {
    state.config = config;
    el("map-panel").hidden = false;
    const maxZoom = config.basemap ? config.basemap.max_zoom : 22;  // chips are metres wide
    const map = L.map("map", { zoomSnap: 0.25, worldCopyJump: true, boxZoom: false, maxZoom });
    const attribution = map.attributionControl;
    if (config.basemap) {
      L.tileLayer(config.basemap.url, {
        attribution: config.basemap.attribution, maxZoom: config.basemap.max_zoom,
      }).addTo(map);
    } else {
      el("map").classList.add("no-basemap");
      attribution.addAttribution("no basemap (serve.map.basemap_url)");
    }
    L.control.scale({ imperial: false }).addTo(map);
    state.footprints = L.featureGroup().addTo(map);
    state.map = map;
    const b = config.bounds;
    if (b) map.fitBounds([[b[1], b[0]], [b[3], b[2]]], { padding: [20, 20] });
    else map.setView([0, 0], 2);
    el("map-draw").addEventListener("click", startDrawing);
    el("map-clear").addEventListener("click", () => setBox(null));
  }

  // ---- drawing a box: press, drag, release (the map does not pan meanwhile)
  function startDrawing() {
    const map = state.map;
    map.dragging.disable();
    el("map").classList.add("drawing");
    el("map-draw").setAttribute("aria-pressed", "true");
    let start = null;
    let rect = null;
    const move = (e) => { if (start) rect.setBounds(L.latLngBounds(start, e.latlng)); };
    const down = (e) => {
      start = e.latlng;
      rect = L.rectangle(L.latLngBounds(start, start), { className: "map-box-drawing", weight: 2 })
        .addTo(map);
    };
    const up = (e) => {
      if (!start) return;
      map.off("mousedown", down).off("mousemove", move).off("mouseup", up);
      map.dragging.enable();
      el("map").classList.remove("drawing");
      el("map-draw").setAttribute("aria-pressed", "false");
      map.removeLayer(rect);
      const bounds = L.latLngBounds(start, e.latlng);
      if (bounds.getNorth() > bounds.getSouth() && bounds.getEast() > bounds.getWest()) {
        setBox(bounds);
      }
    };
    map.on("mousedown", down).on("mousemove", move).on("mouseup", up);
  }

  const clampLon = (v) => Math.max(-180, Math.min(180, v));
  const clampLat = (v) => Math.max(-90, Math.min(90, v));
  const round = (v) => Math.round(v * 1e6) / 1e6;

  function setBox(bounds) {
    if (state.box) state.map.removeLayer(state.box);
    state.box = null;
    state.bbox = null;
    el("map-bbox").textContent = "";
    el("map-clear").hidden = !bounds;
    if (bounds) {
      state.bbox = [
        clampLon(bounds.getWest()), clampLat(bounds.getSouth()),
        clampLon(bounds.getEast()), clampLat(bounds.getNorth()),
      ].map(round);
      state.box = L.rectangle(bounds, { className: "map-box", weight: 2, fill: false })
        .addTo(state.map);
      el("map-bbox").textContent = `box ${state.bbox.join(", ")}`;
    }
    // search again in the new box (or without it) when there is a query
    const form = el("text-form");
    if (el("query").value.trim()) form.requestSubmit();
  }

  // ---- results
  async function searchFields() {
    const config = await load();
    if (!config || !config.geo || !state.map) return {};
    return state.bbox ? { format: "geojson", bbox: state.bbox } : { format: "geojson" };
  }

  function show(body) {
    if (!state.map) return;
    state.footprints.clearLayers();
    const features = (body && body.features) || [];
    for (const feature of features) addFootprint(feature);
    if (features.length) {
      const bounds = state.footprints.getBounds();
      if (state.box) bounds.extend(state.box.getBounds());
      state.map.fitBounds(bounds, { padding: [20, 20] });
    }
  }

  function addFootprint(feature) {
    if (!feature.geometry) return;
    const p = feature.properties;
    const outline = L.geoJSON(feature.geometry, {
      style: { className: "footprint", weight: 2, fill: false },
    });
    const bounds = outline.getBounds();
    // the chip's thumbnail over its footprint's extent (chips are near north-up)
    const thumb = L.imageOverlay(p.thumbnail_url, bounds, {
      className: "footprint-thumb", alt: p.image_id, interactive: true,
    });
    const label = `#${p.rank} ${p.image_id} · score ${p.score.toFixed(4)}` +
      (p.datetime ? ` · ${p.datetime}` : "");
    outline.bindTooltip(label, { sticky: true });
    thumb.bindTooltip(label, { sticky: true });
    state.footprints.addLayer(thumb).addLayer(outline);
  }

  // results for the grid, whichever format the response has
  function results(body) {
    return body.features ? body.features.map((f) => f.properties) : body.results;
  }

  load();
  return {
    searchFields, show, results,
    get map() { return state.map; },
    get bbox() { return state.bbox; },
  };
})();
