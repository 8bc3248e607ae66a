// ferry's dashboard: times in the viewer's zone, and the live parts of a
// page fetched again while what they show is under way. Pages work without it.
"use strict";
(function () {
  const pad = (n) => String(n).padStart(2, "0");
  function localTimes(root) {
    for (const t of root.querySelectorAll("time[data-ms]")) {
      const d = new Date(Number(t.dataset.ms));
      if (Number.isNaN(d.getTime())) continue;
      t.textContent = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
      t.title = t.getAttribute("datetime");
    }
  }
  localTimes(document);
  // <div data-live="URL">: replaced by URL's HTML every 2 s while its
  // content says data-active="true"; stops once it does not.
  for (const el of document.querySelectorAll("[data-live]")) {
    const active = () => el.querySelector('[data-active="true"]') !== null;
    if (!active()) continue;
    const timer = setInterval(async () => {
      try {
        const res = await fetch(el.dataset.live, { headers: { Accept: "text/html" }, credentials: "same-origin" });
        if (!res.ok) return;
        el.innerHTML = await res.text();
        localTimes(el);
        if (!active()) clearInterval(timer);
      } catch (_) { /* the next tick tries again */ }
    }, 2000);
  }
})();
