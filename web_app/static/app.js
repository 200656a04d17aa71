// Firewatch upload page: sends each chosen photo to the JSON API and shows its verdict.
// Plain script, no build step; the form still works without it (it posts to the page).
(function () {
  "use strict";

  const form = document.getElementById("upload-form");
  const input = document.getElementById("image-input");
  const results = document.getElementById("results");
  const status = document.getElementById("status");
  const notice = document.getElementById("notice");
  const clearButton = document.getElementById("clear-results");
  const template = document.getElementById("result-template");
  const apiUrl = form.dataset.mapApi || form.dataset.api;  // with ?map=1 when the model has a fire map
  const fireLabel = document.body.dataset.fireLabel;  // the model's positive label, from the shared contract
  const maxBytes = Number(form.dataset.maxBytes);
  const maxFiles = Number(form.dataset.maxFiles);
  const PARALLEL_UPLOADS = 3;

  let pending = 0;
  let checked = 0;  // photos that got a verdict
  let failed = 0;   // photos that could not be classified

  form.querySelectorAll("[data-no-js]").forEach((element) => { element.hidden = true; });
  // Cards the no-script form already rendered.
  failed = results.querySelectorAll(".result[data-state=error]").length;
  checked = results.children.length - failed;
  clearButton.hidden = results.children.length === 0;

  function formatSize(bytes) {
    return bytes >= 1048576 ? (bytes / 1048576).toFixed(1) + " MB" : Math.max(1, Math.round(bytes / 1024)) + " KB";
  }

  function newCard(file) {
    const card = template.content.firstElementChild.cloneNode(true);
    const name = card.querySelector(".result-name");
    name.textContent = file.name;
    name.title = file.name;
    if (file.type.startsWith("image/")) {
      const img = card.querySelector(".thumb-img");
      img.src = URL.createObjectURL(file);
      img.addEventListener("load", () => { img.hidden = false; }, { once: true });
      img.addEventListener("error", () => { URL.revokeObjectURL(img.src); }, { once: true });
    }
    return card;
  }

  function showVerdict(card, body, elapsedMs, serverMs) {
    const isFire = body.label === fireLabel;
    card.dataset.state = isFire ? "fire" : "nofire";
    card.querySelector(".badge").textContent = isFire ? "Fire" : "No fire";
    const percent = (body.fire_probability * 100).toFixed(1);
    card.querySelector(".probability").textContent = percent + "% fire probability";
    showCertainty(card, body);
    let timing = "Took " + Math.round(elapsedMs) + " ms";
    if (serverMs !== null) timing += " (model and decoding " + Math.round(serverMs) + " ms)";
    card.querySelector(".timing").textContent = timing;
    if (body.fire_map && window.FirewatchMap) window.FirewatchMap.attach(card, body.fire_map);
  }

  // Certainty (issue 13): the bar with the threshold marker, and the "borderline" note near the threshold. The API says
  // which (certainty, threshold); the markup is the template's (_result.html, certainty_bar).
  function showCertainty(card, body) {
    const bar = card.querySelector(".bar");
    bar.value = body.fire_probability;
    bar.textContent = (body.fire_probability * 100).toFixed(1) + "%";
    const thresholdPercent = Math.round(body.threshold * 100) + "%";
    bar.setAttribute("aria-label", "Fire probability (decision threshold " + thresholdPercent + ")");
    card.querySelectorAll(".threshold-mark line").forEach((line) => {
      line.setAttribute("x1", String(body.threshold * 100));
      line.setAttribute("x2", String(body.threshold * 100));
    });
    card.querySelector(".bar-wrap").hidden = false;
    card.dataset.certainty = body.certainty;
    const note = card.querySelector(".certainty");
    note.hidden = body.certainty !== "borderline";
  }

  function showError(card, message, elapsedMs) {
    card.dataset.state = "error";
    card.querySelector(".badge").textContent = "Not classified";
    const text = card.querySelector(".error-text");
    text.textContent = message;
    text.hidden = false;
    card.querySelector(".timing").textContent = elapsedMs === null ? "" : "Took " + Math.round(elapsedMs) + " ms";
  }

  function serverTiming(response) {
    const match = /classify;dur=([\d.]+)/.exec(response.headers.get("Server-Timing") || "");
    return match ? Number(match[1]) : null;
  }

  async function classify(file, card) {
    if (file.size > maxBytes) {
      showError(card, "This photo is " + formatSize(file.size) + "; the limit is " + formatSize(maxBytes) + ".", null);
      return;
    }
    const body = new FormData();
    body.append("image", file, file.name);
    const started = performance.now();
    let response;
    try {
      response = await fetch(apiUrl, { method: "POST", body: body, headers: { Accept: "application/json" } });
    } catch (error) {
      showError(card, "Could not reach the server. Check your connection and try again.", null);
      return;
    }
    const elapsed = performance.now() - started;
    let payload = null;
    try {
      payload = await response.json();
    } catch (error) {
      payload = null;
    }
    if (response.ok && payload && payload.label) {
      showVerdict(card, payload, elapsed, serverTiming(response));
    } else if (payload && payload.error) {
      showError(card, payload.error.message, elapsed);
    } else {
      showError(card, "The server could not answer (HTTP " + response.status + "). Please try again in a moment.", elapsed);
    }
  }

  // Worded as the page's no-script form words it (web_app/pages.py, status_line).
  function summary() {
    if (checked === 0 && failed === 0) return "No photos checked yet.";
    const line = checked + " photo" + (checked === 1 ? "" : "s") + " checked";
    return line + (failed ? ", " + failed + " could not be read." : ".");
  }

  function announce() {
    status.textContent = pending > 0 ? "Checking " + pending + " photo" + (pending === 1 ? "" : "s") + "…" : summary();
  }

  async function handleFiles(fileList) {
    const files = Array.from(fileList).slice(0, maxFiles);
    // Its own element, so the running count in #status does not overwrite it.
    notice.textContent = fileList.length > maxFiles
      ? "You chose " + fileList.length + " photos; only the first " + maxFiles + " are checked at a time."
      : "";
    notice.hidden = fileList.length <= maxFiles;
    const queue = files.map((file) => ({ file: file, card: newCard(file) }));
    results.prepend(...queue.map((job) => job.card));  // newest batch first, in the order chosen
    clearButton.hidden = queue.length === 0 && checked + failed === 0;
    pending += queue.length;
    announce();
    async function worker() {
      for (let job = queue.shift(); job; job = queue.shift()) {
        await classify(job.file, job.card);
        pending -= 1;
        if (job.card.dataset.state === "error") failed += 1; else checked += 1;
        announce();
      }
    }
    await Promise.all(Array.from({ length: Math.min(PARALLEL_UPLOADS, queue.length) }, worker));
  }

  input.addEventListener("change", () => {
    if (input.files.length) handleFiles(input.files);
    input.value = "";  // choosing the same file again should classify it again
  });

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (input.files.length) handleFiles(input.files);
  });

  // Dropping anywhere on the page must not navigate away to the photo; only the drop zone accepts it.
  ["dragover", "drop"].forEach((type) => {
    document.addEventListener(type, (event) => event.preventDefault());
  });
  form.addEventListener("dragenter", () => form.classList.add("is-dragging"));
  form.addEventListener("dragover", (event) => {
    event.dataTransfer.dropEffect = "copy";
    form.classList.add("is-dragging");
  });
  form.addEventListener("dragleave", (event) => {
    if (!form.contains(event.relatedTarget)) form.classList.remove("is-dragging");
  });
  form.addEventListener("drop", (event) => {
    form.classList.remove("is-dragging");
    if (event.dataTransfer && event.dataTransfer.files.length) handleFiles(event.dataTransfer.files);
  });

  clearButton.addEventListener("click", () => {
    results.querySelectorAll(".thumb-img[src^='blob:']").forEach((img) => URL.revokeObjectURL(img.src));
    results.replaceChildren();
    checked = 0;
    failed = 0;
    clearButton.hidden = true;
    notice.hidden = true;
    status.textContent = summary();
    input.focus();
  });
})();
