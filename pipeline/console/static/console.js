// event-pipeline console: live refresh of /api/v1/stats, lag sparklines (uPlot), redrive.
"use strict";
(function () {
  const charts = {};
  const tokenInput = document.getElementById("token");
  if (tokenInput) {
    tokenInput.value = sessionStorage.getItem("pipeline-console-token") || "";
    tokenInput.addEventListener("input", () =>
      sessionStorage.setItem("pipeline-console-token", tokenInput.value));
  }

  function spark(el, history) {
    const xs = history.map((p) => p[0]);
    const ys = history.map((p) => p[1]);
    const data = [xs, ys];
    const name = el.dataset.spark;
    if (charts[name] && charts[name].root.parentNode === el) {
      charts[name].setData(data);
      return;
    }
    el.textContent = "";
    charts[name] = new uPlot({
      width: el.clientWidth || 160, height: el.clientHeight || 32,
      legend: { show: false }, cursor: { show: false },
      axes: [{ show: false }, { show: false }],
      scales: { x: { time: false }, y: { range: (u, lo, hi) => [0, Math.max(1, hi)] } },
      series: [{}, { stroke: "#36c", fill: "rgba(51,102,204,.15)", width: 1, points: { show: false } }],
    }, data, el);
  }

  function show(group) {
    for (const root of document.querySelectorAll(`[data-group="${CSS.escape(group.group)}"]`)) {
      for (const el of root.querySelectorAll("[data-field]")) {
        const f = el.dataset.field;
        let v = group[f];
        if (v === null || v === undefined) v = "-";
        else if (f === "lag_seconds") v = Number(v).toFixed(1);
        el.textContent = String(v);
        if (f === "status") el.className = `status s-${v}`;
      }
    }
    for (const el of document.querySelectorAll(`[data-spark="${CSS.escape(group.group)}"]`)) {
      spark(el, group.history);
    }
  }

  function showScheduler(tiers) {
    const body = document.querySelector("#scheduler tbody");
    if (!body || !tiers.length) return;
    body.textContent = "";
    for (const t of tiers) {
      const tr = body.insertRow();
      for (const v of [t.tier, t.topic, t.pending]) tr.insertCell().textContent = String(v);
      tr.cells[2].className = "num";
      tr.dataset.tier = t.tier;
    }
    const total = document.getElementById("scheduler-total");
    if (total) total.textContent = String(tiers.reduce((n, t) => n + t.pending, 0));
  }

  async function refresh() {
    const live = document.getElementById("live-state");
    try {
      const resp = await fetch("/api/v1/stats", { cache: "no-store" });
      const stats = await resp.json();
      const table = document.querySelector("#groups tbody");
      const known = new Set(stats.groups.map((g) => g.group));
      if (table) {
        const shown = new Set([...table.querySelectorAll("tr[data-group]")].map((r) => r.dataset.group));
        if ([...known].some((g) => !shown.has(g))) { location.reload(); return; }
      }
      stats.groups.forEach(show);
      showScheduler(stats.scheduler);
      if (live) live.textContent = `updated ${new Date(stats.taken_at * 1000).toLocaleTimeString()}`;
    } catch (err) {
      if (live) live.textContent = `refresh failed: ${err}`;
    }
  }

  async function post(url, body) {
    const headers = { "Content-Type": "application/json" };
    const token = tokenInput ? tokenInput.value.trim() : "";
    if (token) headers.Authorization = `Bearer ${token}`;
    const resp = await fetch(url, { method: "POST", headers, body: JSON.stringify(body) });
    const data = await resp.json();
    if (!resp.ok) throw new Error(`${resp.status}: ${data.error || data.detail || resp.statusText}`);
    return data;
  }

  const box = document.getElementById("redrive");
  if (box) {
    const out = document.getElementById("redrive-result");
    const group = box.dataset.group;
    const filter = {};
    if (box.dataset.errorType) filter.error_type = box.dataset.errorType;
    if (box.dataset.key) filter.key = box.dataset.key;
    const url = `/api/v1/groups/${encodeURIComponent(group)}/dead-letters/redrive`;
    document.getElementById("redrive-button").addEventListener("click", async () => {
      try {
        out.textContent = "dry run…";
        const dry = await post(url, { dry_run: true, filter });
        out.textContent = `dry run: scanned ${dry.scanned}, would redrive ${dry.to_send} to ${dry.retry_topic}` +
          (dry.skipped_redriven ? `, skip ${dry.skipped_redriven} already redriven` : "") +
          (dry.skipped_duplicates ? `, skip ${dry.skipped_duplicates} duplicates` : "");
        if (!dry.to_send) return;
        if (!window.confirm(`Redrive ${dry.to_send} dead letter(s) of ${group} to ${dry.retry_topic}?`)) {
          out.textContent += " (cancelled)";
          return;
        }
        const run = await post(url, { dry_run: false, filter });
        out.textContent = `redriven ${run.redriven} to ${run.retry_topic}, failed ${run.failed}` +
          (run.position_saved ? `; position saved in ${run.position_group}` : "");
        refresh();
      } catch (err) {
        out.textContent = `redrive failed: ${err.message}`;
      }
    });
  }

  const every = Number(document.body.dataset.refresh || 5) * 1000;
  refresh();
  setInterval(refresh, Math.max(1000, every));
})();
