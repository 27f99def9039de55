// fc-wsgi dashboard: refresh the counts per state without reloading the page.
// Served as a file (the Content-Security-Policy forbids inline script); no framework, no CDN.
"use strict";

const REFRESH_MILLISECONDS = 2000;

async function refreshCounts(nav) {
  try {
    const response = await fetch(nav.dataset.source, {credentials: "same-origin"});
    if (!response.ok) return;
    const counts = await response.json();
    for (const cell of nav.querySelectorAll("[data-count]")) {
      const count = counts[cell.dataset.count] ?? 0;
      if (cell.textContent !== String(count)) cell.textContent = String(count);
    }
    nav.dataset.refreshed = String(Date.now());
  } catch (error) {
    nav.dataset.error = String(error);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const nav = document.getElementById("counts");
  if (!nav || !nav.dataset.source) return;
  refreshCounts(nav);
  setInterval(() => refreshCounts(nav), REFRESH_MILLISECONDS);
});
