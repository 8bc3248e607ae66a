// ferry's dashboard: times in the viewer's zone. Pages work without it.
"use strict";
(function () {
  const pad = (n) => String(n).padStart(2, "0");
  for (const t of document.querySelectorAll("time[data-ms]")) {
    const d = new Date(Number(t.dataset.ms));
    if (Number.isNaN(d.getTime())) continue;
    t.textContent = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
    t.title = t.getAttribute("datetime");
  }
})();
