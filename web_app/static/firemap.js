// Firewatch fire map: "Show where" on a result card overlays the model's coarse map of fire evidence on the
// thumbnail. app.js hands each verdict's `fire_map` (rows of cells 0..1, top row first) to FirewatchMap.attach.
// A canvas, not inline styles (the CSP forbids them); the caption says in words where the evidence is strongest.
(function () {
  "use strict";

  const STRONG = 0.5;  // a cell with at least this much evidence counts as "fire evidence" in the caption
  const NOWHERE = [24, 26, 33, 0.62];  // no evidence: the photo is dimmed...
  const FIRE = [255, 128, 0, 0.3];     // ...strong evidence: lit and tinted amber, so it shows even on red photos

  // Evidence 0..1 -> RGBA, blending from dimmed to lit between 0.3 and 0.8.
  function heat(value) {
    const t = Math.min(1, Math.max(0, (value - 0.3) / 0.5));
    const mix = (i) => NOWHERE[i] + (FIRE[i] - NOWHERE[i]) * t;
    return [mix(0), mix(1), mix(2), 255 * mix(3)].map(Math.round);
  }

  // The map as a tiny image, one pixel per cell; the browser smooths it when it is scaled up.
  function mapImage(map) {
    const rows = map.length;
    const columns = map[0].length;
    const cells = document.createElement("canvas");
    cells.width = columns;
    cells.height = rows;
    const context = cells.getContext("2d");
    const pixels = context.createImageData(columns, rows);
    map.forEach((row, r) => row.forEach((value, c) => pixels.data.set(heat(value), 4 * (r * columns + c))));
    context.putImageData(pixels, 0, 0);
    return cells;
  }

  // Drawn over the thumbnail as it is shown (object-fit: cover crops the photo), so each cell lands on its part of
  // the photo; the model saw the whole photo squeezed to a square, which is what the map covers.
  function draw(card, map) {
    const thumb = card.querySelector(".thumb");
    const canvas = card.querySelector(".fire-map-overlay");
    const img = card.querySelector(".thumb-img");
    const ratio = window.devicePixelRatio || 1;
    const width = Math.round(thumb.clientWidth * ratio);
    const height = Math.round(thumb.clientHeight * ratio);
    canvas.width = width;
    canvas.height = height;
    const photoWidth = img.naturalWidth || width;
    const photoHeight = img.naturalHeight || height;
    const scale = Math.max(width / photoWidth, height / photoHeight);
    const drawnWidth = photoWidth * scale;
    const drawnHeight = photoHeight * scale;
    const context = canvas.getContext("2d");
    context.clearRect(0, 0, width, height);
    context.imageSmoothingEnabled = true;
    context.drawImage(mapImage(map), (width - drawnWidth) / 2, (height - drawnHeight) / 2, drawnWidth, drawnHeight);
  }

  // How much of the photo shows fire evidence and where it is centred, in words (for everyone, and for screen
  // readers, since the thumbnail is hidden from them).
  function describe(map) {
    const rows = map.length;
    const columns = map[0].length;
    let count = 0, weight = 0, rowSum = 0, columnSum = 0;
    map.forEach((row, r) => row.forEach((value, c) => {
      if (value < STRONG) return;
      count += 1;
      weight += value;
      rowSum += value * (r + 0.5);
      columnSum += value * (c + 0.5);
    }));
    const grid = " (coarse " + rows + " × " + columns + " map)";
    if (count === 0) return "The model sees little fire evidence anywhere in this photo" + grid + ".";
    const share = Math.round((100 * count) / (rows * columns));
    if (share >= 80) return "Fire evidence nearly everywhere in the photo" + grid + ".";
    const third = (position, size, names) => names[Math.min(2, Math.floor((3 * position) / size))];
    const vertical = third(rowSum / weight, rows, ["top", "middle", "bottom"]);
    const horizontal = third(columnSum / weight, columns, ["left", "centre", "right"]);
    const place = vertical === "middle" ? (horizontal === "centre" ? "the centre" : "the middle " + horizontal)
      : "the " + vertical + (horizontal === "centre" ? "" : " " + horizontal);
    return "Fire evidence over about " + share + "% of the photo, mostly " + place + grid + ".";
  }

  function attach(card, map) {
    if (!Array.isArray(map) || !map.length || !Array.isArray(map[0]) || !map[0].length) return;
    const controls = card.querySelector(".fire-map-controls");
    const button = card.querySelector(".map-toggle");
    const canvas = card.querySelector(".fire-map-overlay");
    const caption = card.querySelector(".map-caption");
    const img = card.querySelector(".thumb-img");
    caption.textContent = describe(map);
    controls.hidden = false;
    function show(on) {
      button.setAttribute("aria-pressed", String(on));
      card.classList.toggle("is-map-shown", on);  // the thumbnail grows to show the map
      canvas.hidden = !on;
      caption.hidden = !on;
      if (on) draw(card, map);
    }
    button.addEventListener("click", () => show(button.getAttribute("aria-pressed") !== "true"));
    // The photo may finish loading after the map arrived: redraw with its real proportions.
    img.addEventListener("load", () => { if (!canvas.hidden) draw(card, map); });
    show(false);
  }

  window.FirewatchMap = { attach: attach, describe: describe };
})();
