// Firewatch side panel: refreshes the latest serverless results from GET /api/v1/results every few seconds.
// The list is rebuilt only when the results change (no flashing, and the polite status line speaks only then).
(function () {
  "use strict";

  const panel = document.getElementById("pipeline");
  if (!panel) return;
  const list = document.getElementById("pipeline-results");
  const fireLabel = document.body.dataset.fireLabel;  // the model's positive label, from the shared contract
  const status = document.getElementById("pipeline-status");
  const template = document.getElementById("feed-item-template");
  const apiUrl = panel.dataset.api;
  const intervalMs = Number(panel.dataset.intervalMs) || 5000;

  let signature = null;  // what the list shows now; null until the first answer and after a failure
  let timer = null;
  let polling = false;

  function say(text) {
    if (status.textContent !== text) status.textContent = text;
  }

  function timeAgo(iso) {
    const then = Date.parse(iso);
    if (Number.isNaN(then)) return iso;
    const seconds = Math.max(0, Math.round((Date.now() - then) / 1000));
    if (seconds < 10) return "just now";
    if (seconds < 60) return seconds + " s ago";
    if (seconds < 3600) return Math.floor(seconds / 60) + " min ago";
    if (seconds < 86400) return Math.floor(seconds / 3600) + " h ago";
    return new Date(then).toLocaleString();
  }

  function refreshTimes() {
    list.querySelectorAll("time").forEach((time) => {
      time.textContent = timeAgo(time.dateTime);
      time.title = new Date(time.dateTime).toUTCString();
    });
  }

  function item(record) {
    const node = template.content.firstElementChild.cloneNode(true);
    const name = node.querySelector(".feed-name");
    name.textContent = record.name;
    name.title = record.key || record.name;
    if (record.error) {
      node.dataset.state = "error";
      node.querySelector(".badge").textContent = "Not classified";
      const text = node.querySelector(".error-text");
      text.textContent = record.error.message;
      text.hidden = false;
    } else {
      const isFire = record.label === fireLabel;
      node.dataset.state = isFire ? "fire" : "nofire";
      node.querySelector(".badge").textContent = isFire ? "Fire" : "No fire";
      node.querySelector(".probability").textContent = (record.fire_probability * 100).toFixed(1) + "% fire probability";
    }
    node.querySelector("time").dateTime = record.classified_at;
    node.dataset.key = record.result_key + " " + record.classified_at;
    return node;
  }

  function show(results) {
    const next = JSON.stringify(results.map((r) => [r.result_key, r.etag, r.classified_at]));
    if (next !== signature) {
      const before = new Set(Array.from(list.querySelectorAll(".feed-item"), (node) => node.dataset.key));
      list.replaceChildren(...results.map(item));
      const fresh = results.filter((r) => !before.has(r.result_key + " " + r.classified_at)).length;
      if (!results.length) {
        say("No results yet: upload a photo to the bucket and its verdict appears here.");
      } else if (fresh > 0) {
        say(fresh + " new result" + (fresh === 1 ? "" : "s") + " from the pipeline.");
      } else {
        say("Showing the " + results.length + " latest result" + (results.length === 1 ? "" : "s") + ".");
      }
      signature = next;
    }
    refreshTimes();
  }

  async function poll() {
    timer = null;
    if (polling) return;
    polling = true;
    try {
      const response = await fetch(apiUrl, { headers: { Accept: "application/json" } });
      const body = await response.json();
      if (!response.ok || !Array.isArray(body.results)) throw new Error("HTTP " + response.status);
      show(body.results);
    } catch (error) {
      say("The pipeline's results cannot be read right now. Trying again in a few seconds.");
      signature = null;
      refreshTimes();
    }
    polling = false;
    schedule();
  }

  function schedule(delayMs = intervalMs) {
    if (timer === null && !document.hidden) timer = setTimeout(poll, delayMs);
  }

  // A background tab stops polling; coming back refreshes at once.
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) {
      clearTimeout(timer);
      timer = null;
    } else if (timer === null) {
      poll();
    }
  });

  refreshTimes();  // the server rendered the first list (with data-key) and its timestamps
  // The server does not hold the page for a slow S3: when it had no results yet, ask for them at once.
  schedule("loading" in panel.dataset ? 0 : intervalMs);
})();
