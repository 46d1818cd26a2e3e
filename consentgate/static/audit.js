// The auditor page: the same figures as the reports API, fetched with the auditor's own key.
// The key lives in sessionStorage only, so it is gone when the tab closes.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { key: sessionStorage.getItem("consentgate-key") || "" };

function query(extra = {}) {
  const params = new URLSearchParams(extra);
  if ($("since").value) params.set("since", $("since").value + "T00:00:00Z");
  if ($("until").value) params.set("until", $("until").value + "T23:59:59Z");
  return params.toString();
}

async function api(path) {
  const response = await fetch(path, { headers: { Authorization: "Bearer " + state.key } });
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
    throw new Error(`${response.status}: ${detail}`);
  }
  return response;
}

async function report(name, extra = {}) {
  const body = await (await api(`/v1/reports/${name}?${query({ format: "json", ...extra })}`)).json();
  return Array.isArray(body) ? body : (body.rows || body.groups || body.items || []);
}

function pct(value) {
  return value === null || value === undefined ? "–" : (100 * value).toFixed(2) + " %";
}

function barChart(svg, bars, bad = false) {
  const width = Number(svg.getAttribute("width")), height = Number(svg.getAttribute("height"));
  const ns = "http://www.w3.org/2000/svg";
  svg.replaceChildren();
  if (!bars.length) {
    const empty = document.createElementNS(ns, "text");
    empty.setAttribute("x", 10); empty.setAttribute("y", 20); empty.textContent = "No data in this period.";
    svg.appendChild(empty);
    return;
  }
  const max = Math.max(...bars.map((b) => b.value), 1e-9);
  const slot = (width - 20) / bars.length, plot = height - 40;
  bars.forEach((bar, i) => {
    const h = Math.max(1, (bar.value / max) * plot);
    const rect = document.createElementNS(ns, "rect");
    rect.setAttribute("class", bad ? "bar bad" : "bar");
    rect.setAttribute("x", 10 + i * slot + slot * 0.15); rect.setAttribute("width", slot * 0.7);
    rect.setAttribute("y", 10 + plot - h); rect.setAttribute("height", h);
    rect.setAttribute("data-label", bar.label); rect.setAttribute("data-value", bar.value);
    const title = document.createElementNS(ns, "title");
    title.textContent = `${bar.label}: ${bar.text}`;
    rect.appendChild(title);
    const label = document.createElementNS(ns, "text");
    label.setAttribute("x", 10 + i * slot + slot / 2); label.setAttribute("y", height - 12);
    label.setAttribute("text-anchor", "middle"); label.textContent = String(bar.label).slice(0, 18);
    svg.append(rect, label);
  });
}

// The chain is checked a stretch per request, each from where the last stopped, so that no
// request outlasts the server's timeout however long the ledger grows.
const STRETCH = Number(new URLSearchParams(location.search).get("stretch")) || 100000;

async function loadChain() {
  const chain = $("chain");
  const run = (state.chainRun = (state.chainRun || 0) + 1);
  let after = 0, checked = 0;
  chain.dataset.state = "verifying";
  chain.textContent = "Verifying the chain…";
  try {
    for (;;) {
      const result = await (await api(`/v1/audit/verify?after=${after}&limit=${STRETCH}`)).json();
      if (run !== state.chainRun) return;  // a newer load took over
      checked += result.checked;
      if (!result.ok) {
        const broken = result.first_broken;
        chain.dataset.state = "broken";
        chain.textContent = `Chain broken at entry ${broken.seq} (${broken.table} ${broken.row_id}): ${broken.problem}`;
        return;
      }
      if (result.next_after === null) break;
      after = result.next_after;
      chain.textContent = `Verifying the chain… ${checked.toLocaleString("en-US")} of ` +
        `${result.last_seq.toLocaleString("en-US")} ledger rows so far.`;
    }
    chain.dataset.state = "ok";
    chain.textContent = `Chain intact: ${checked} ledger rows verified.`;
  } catch (error) {
    if (run !== state.chainRun) return;
    chain.dataset.state = "error";
    chain.textContent = "Could not verify the chain: " + error.message;
  }
}

async function loadSla() {
  const rows = await report("revocations");
  const counts = { met: 0, pending: 0, at_risk: 0, missed: 0 };
  rows.forEach((row) => { if (row.sla_status in counts) counts[row.sla_status] += 1; });
  Object.entries(counts).forEach(([status, n]) => { $("sla-" + status).textContent = n; });
}

async function loadOptouts() {
  const groupBy = $("group-by").value;
  const rows = await report("optouts", { group_by: groupBy });
  const body = $("optouts").querySelector("tbody");
  body.replaceChildren();
  rows.forEach((row) => {
    const tr = document.createElement("tr");
    const group = row.group ?? row[groupBy] ?? "(none)";
    [group, row.touches, row.optouts, row.complaints, pct(row.optout_rate), pct(row.complaint_rate)]
      .forEach((value, i) => {
        const td = document.createElement("td");
        td.textContent = value === null || value === undefined ? "(none)" : value;
        if (i > 0) td.className = "num";
        tr.appendChild(td);
      });
    body.appendChild(tr);
  });
  barChart($("optout-chart"), rows.map((row) => ({
    label: row.group ?? row[groupBy] ?? "(none)", value: row.optout_rate || 0, text: pct(row.optout_rate),
  })));
}

async function loadDecisions() {
  const rows = await report("decisions");
  const allowed = rows.filter((row) => row.allowed === true || row.allowed === "true").length;
  $("decisions-allowed").textContent = allowed;
  $("decisions-denied").textContent = rows.length - allowed;
  const perCode = {};
  rows.forEach((row) => {
    const codes = Array.isArray(row.codes) ? row.codes : String(row.codes || "").split(/[,;|]/);
    codes.filter(Boolean).forEach((code) => { perCode[code] = (perCode[code] || 0) + 1; });
  });
  barChart($("reasons-chart"), Object.entries(perCode).sort((a, b) => b[1] - a[1])
    .map(([code, n]) => ({ label: code, value: n, text: String(n) })), true);
}

async function download(name) {
  const response = await api(`/v1/reports/${name}?${query({ format: "csv" })}`);
  const url = URL.createObjectURL(await response.blob());
  const link = Object.assign(document.createElement("a"), { href: url, download: `${name}.csv` });
  document.body.appendChild(link); link.click(); link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

async function loadAll() {
  const status = $("status");
  status.dataset.state = "loading";
  status.textContent = "Loading…";
  try {
    loadChain();  // reports its own progress and errors in #chain
    await Promise.all([loadSla(), loadOptouts(), loadDecisions()]);
    status.dataset.state = "ready";
    status.textContent = "Figures loaded " + new Date().toISOString().replace(/\.\d+Z$/, "Z") + ".";
  } catch (error) {
    status.dataset.state = "error";
    status.textContent = "Could not load the figures: " + error.message;
  }
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  state.key = $("api-key").value.trim();
  sessionStorage.setItem("consentgate-key", state.key);
  loadAll();
});
$("group-by").addEventListener("change", () => loadOptouts().catch((e) => { $("status").textContent = e.message; }));
document.querySelectorAll("button.download").forEach((button) => {
  button.addEventListener("click", () => download(button.dataset.report).catch((e) => {
    $("status").dataset.state = "error"; $("status").textContent = e.message;
  }));
});
if (state.key) { $("api-key").value = state.key; loadAll(); }
