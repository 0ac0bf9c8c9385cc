// The dashboard (docs/reports.md, "Dashboard"): plain JS over the report endpoints, charts
// drawn as inline SVG, nothing loaded from anywhere but this service.
//
// The API key: from the URL fragment (#key=...) or the form, kept in sessionStorage (this
// tab only); the fragment is removed from the address at once. Filters live in the query
// string, so an address can be shared without the key.
"use strict";

(() => {
  const KEY = "outcomes.dashboard.key";
  const SVG = "http://www.w3.org/2000/svg";
  /** more days than this: weekly buckets (one outcome-mix request per bucket) */
  const MAX_DAILY_BUCKETS = 45;
  const MAX_DAYS = 366;
  const PARALLEL = 6;
  const HISTORY_PAGE = 50;
  const SAMPLE_SIZE = 10;
  const PALETTE = [
    "#2f6fb0", "#e0892b", "#3a9e5a", "#c9443c", "#8a63b8", "#8c5a45",
    "#d46fb1", "#6b8e23", "#17a2b8", "#b8a02a", "#4b5fd1", "#b35c00",
  ];
  const NONE_COLOUR = "#9aa0a6";

  const $ = (id) => document.getElementById(id);

  /** An HTML element with attributes (`dataset` as an object) and children (text or nodes). */
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "dataset") Object.assign(node.dataset, value);
      else if (name === "onclick") node.addEventListener("click", value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    node.append(...children.filter((c) => c !== null && c !== undefined));
    return node;
  }

  function svg(tag, attrs = {}, ...children) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (name === "onclick") node.addEventListener("click", value);
      else node.setAttribute(name, String(value));
    }
    node.append(...children);
    return node;
  }

  // -- the key -------------------------------------------------------------------------------------

  function takeKeyFromFragment() {
    const fragment = new URLSearchParams(location.hash.slice(1));
    const key = fragment.get("key");
    if (key) {
      sessionStorage.setItem(KEY, key);
      // off the address bar and out of the history at once
      history.replaceState(null, "", location.pathname + location.search);
    }
    return Boolean(key);
  }

  const key = () => sessionStorage.getItem(KEY);

  function askForKey(message) {
    sessionStorage.removeItem(KEY);
    $("dashboard").hidden = true;
    $("forget").hidden = true;
    $("key-form").hidden = false;
    $("key-error").textContent = message || "";
    document.body.dataset.state = "key";
    $("key").focus();
  }

  // -- the API -------------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(report, params) {
    const url = new URL(`/v1/reports/${report}`, location.origin);
    for (const [name, value] of Object.entries(params)) {
      if (value !== "" && value !== null && value !== undefined) url.searchParams.set(name, String(value));
    }
    const response = await fetch(url, { headers: { Authorization: `Bearer ${key()}` } });
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      const message = body && body.message ? body.message : `${response.status} ${response.statusText}`;
      throw new ApiError(response.status, `${report}: ${message}`);
    }
    return body;
  }

  /** fn over every item, at most PARALLEL at a time, results in order */
  async function pooled(items, fn) {
    const results = new Array(items.length);
    let next = 0;
    const worker = async () => {
      while (next < items.length) {
        const i = next++;
        results[i] = await fn(items[i]);
      }
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL, items.length) }, worker));
    return results;
  }

  // -- dates and buckets (pure) --------------------------------------------------------------------

  const parseDay = (s) => new Date(`${s}T00:00:00Z`);
  const dayString = (d) => d.toISOString().slice(0, 10);
  const addDays = (d, n) => new Date(d.getTime() + n * 86400000);
  const daysBetween = (a, b) => Math.round((parseDay(b) - parseDay(a)) / 86400000) + 1;

  function isoWeek(d) {
    // the ISO week's Thursday decides its year
    const thursday = addDays(d, 3 - ((d.getUTCDay() + 6) % 7));
    const jan4 = new Date(Date.UTC(thursday.getUTCFullYear(), 0, 4));
    const week = 1 + Math.round((thursday - addDays(jan4, -((jan4.getUTCDay() + 6) % 7))) / 604800000);
    return `${thursday.getUTCFullYear()}-W${String(week).padStart(2, "0")}`;
  }

  /** the chart's columns: each day, or each ISO week (Monday to Sunday) cut to the range */
  function buckets(from, to) {
    const weekly = daysBetween(from, to) > MAX_DAILY_BUCKETS;
    const out = [];
    let start = parseDay(from);
    const last = parseDay(to);
    while (start <= last) {
      let end = start;
      if (weekly) {
        end = addDays(start, 6 - ((start.getUTCDay() + 6) % 7));
        if (end > last) end = last;
      }
      out.push({
        label: weekly ? isoWeek(start) : dayString(start).slice(5),
        from: dayString(start),
        to: dayString(end),
      });
      start = addDays(end, 1);
    }
    return out;
  }

  // -- filters -------------------------------------------------------------------------------------

  const FILTERS = ["project", "interaction", "from", "to", "group", "as_defined", "scale"];

  function defaults() {
    const today = new Date();
    const to = dayString(new Date(Date.UTC(today.getFullYear(), today.getMonth(), today.getDate())));
    return {
      project: "", interaction: "call", from: dayString(addDays(parseDay(to), -13)), to,
      group: "outcome", as_defined: "then", scale: "count",
    };
  }

  function readFilters() {
    const query = new URLSearchParams(location.search);
    const f = defaults();
    for (const name of FILTERS) if (query.has(name)) f[name] = query.get(name);
    return f;
  }

  function showFilters(f) {
    const form = $("filters");
    const select = form.elements.project;
    if (f.project && ![...select.options].some((o) => o.value === f.project)) {
      select.append(el("option", { value: f.project }, f.project));
    }
    for (const name of FILTERS) form.elements[name].value = f[name];
  }

  function formFilters() {
    const form = $("filters");
    return Object.fromEntries(FILTERS.map((name) => [name, form.elements[name].value]));
  }

  function checkFilters(f) {
    if (!f.from || !f.to) return "give both dates";
    if (f.from > f.to) return `From ${f.from} is after To ${f.to}`;
    if (daysBetween(f.from, f.to) > MAX_DAYS) return `at most ${MAX_DAYS} days at once`;
    return null;
  }

  // -- formatting ----------------------------------------------------------------------------------

  const percent = (value) => (value === null ? "–" : `${value.toFixed(1)}%`);
  const rate = (value) => (value === null ? "–" : `${(100 * Number(value)).toFixed(1)}%`);
  /** a time as the API gives it, to the second, with its zone ("Z" as "UTC") */
  function when(iso) {
    const parts = iso ? /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]\d\d:\d\d)?$/.exec(iso) : null;
    if (!parts) return iso || "";
    return `${parts[1]} ${parts[2]} ${parts[3] === "Z" ? "UTC" : parts[3] || ""}`.trim();
  }

  function colours(keys) {
    const map = new Map();
    let n = 0;
    for (const k of keys) map.set(k, k === "-" ? NONE_COLOUR : PALETTE[n++ % PALETTE.length]);
    return map;
  }

  // -- loading -------------------------------------------------------------------------------------

  let current = null; // {filters, buckets, total, perBucket, rates, colours}
  let loads = 0; // only the latest load may render: an earlier one may answer later

  async function load(f) {
    const generation = ++loads;
    document.body.dataset.state = "loading";
    $("error").textContent = "";
    const problem = checkFilters(f);
    if (problem) {
      $("error").textContent = problem;
      document.body.dataset.state = "error";
      return;
    }
    const mix = (from, to) =>
      api("outcome-mix", {
        interaction: f.interaction, project: f.project, date_from: from, date_to: to,
        group_by: f.group, as_defined: f.as_defined,
      });
    try {
      const columns = buckets(f.from, f.to);
      const [projects, total, rates, perBucket] = await Promise.all([
        api("outcome-mix", { interaction: f.interaction, group_by: "project" }),
        mix(f.from, f.to),
        f.project
          ? api("rates", { project_id: f.project, rolling_30_days_ending: f.to, as_defined: f.as_defined })
          : null,
        pooled(columns, (b) => mix(b.from, b.to)),
      ]);
      if (generation !== loads) return;
      fillProjects(projects.rows.map((r) => r.key), f.project);
      const shown = total.rows.filter((r) => r.count > 0).map((r) => r.key);
      current = { filters: f, buckets: columns, total, perBucket, rates, colours: colours(shown) };
      render();
      document.body.dataset.state = "ready";
    } catch (error) {
      if (generation !== loads) return;
      if (error instanceof ApiError && error.status === 401) {
        askForKey("The service did not accept that key.");
        return;
      }
      $("error").textContent = error.message;
      document.body.dataset.state = "error";
    }
  }

  function fillProjects(projects, selected) {
    const select = $("filters").elements.project;
    const known = new Set([...select.options].map((o) => o.value));
    for (const p of [...projects, selected]) {
      if (p && !known.has(p)) {
        select.append(el("option", { value: p }, p));
        known.add(p);
      }
    }
    select.value = selected;
  }

  // -- rendering -----------------------------------------------------------------------------------

  function render() {
    renderSummary();
    renderChart();
    renderTable();
  }

  function card(label, value, detail, name) {
    return el("div", { class: "card", dataset: { card: name } },
      el("span", { class: "label" }, label),
      el("strong", { class: "value" }, value),
      detail ? el("span", { class: "detail" }, detail) : null);
  }

  function renderSummary() {
    const { filters: f, total, rates } = current;
    const cards = [
      card(`${f.interaction === "call" ? "Calls" : "Conversations"} ${f.from} – ${f.to}`, String(total.total),
        f.project || "all projects", "total"),
    ];
    if (rates) {
      const r = rates.rates;
      const ratio = (num, den) => `${num} / ${den}`;
      const seconds = (v) => (v === null ? "–" : `${Math.round(v)} s`);
      cards.push(
        card("Contact rate", rate(r.contact_rate), ratio(r.contact_calls, r.live_answered), "contact_rate"),
        card("Presentation rate", rate(r.presentation_rate), ratio(r.presentation_calls, r.contact_calls),
          "presentation_rate"),
        card("Success rate", rate(r.success_rate), ratio(r.success_calls, r.contact_calls), "success_rate"),
        card("Abandoned (regulatory)", rate(r.abandoned_rate), ratio(r.abandoned_calls, r.live_answered),
          "abandoned_rate"),
        card("Revenue", r.revenue, `${r.calls} calls`, "revenue"),
        card("Average handle", seconds(r.average_handle_seconds),
          `wrap-up ${seconds(r.average_wrap_up_seconds)}`, "average_handle_seconds"),
        card("First-call resolution", rate(r.first_call_resolution),
          ratio(r.fcr_conversations, r.closed_conversations), "first_call_resolution"),
      );
    }
    $("summary").replaceChildren(...cards);
    $("summary").append(el("p", { class: "note" },
      rates ? `Rates: the 30 days ${rates.first_day} – ${rates.last_day}, ${f.as_defined === "then" ? "flags as defined then" : "flags as defined now"}. `
        : "Choose a project for its rates. ",
      `Report position ${total.position}.`));
  }

  function renderChart() {
    const { buckets: columns, perBucket, colours: palette, filters: f } = current;
    const share = f.scale === "share";
    const keys = [...palette.keys()];
    const width = Math.max($("chart").clientWidth, 60 + columns.length * 34);
    const height = 300;
    const left = 48, right = 12, top = 12, bottom = 44;
    const plotW = width - left - right, plotH = height - top - bottom;
    const { step: tick, top: max } = share ? { step: 25, top: 100 } : axis(Math.max(1, ...perBucket.map((b) => b.total)));
    const step = plotW / columns.length;
    const barW = Math.max(4, Math.min(40, step * 0.7));
    const y = (v) => top + plotH - (v / max) * plotH;

    const chart = svg("svg", {
      viewBox: `0 0 ${width} ${height}`, width, height, role: "img",
      "aria-label": `${f.group === "outcome" ? "Outcomes" : "Categories"} per day or week`,
    });
    for (let v = 0; v <= max; v += tick) {
      chart.append(
        svg("line", { x1: left, x2: width - right, y1: y(v), y2: y(v), class: "grid" }),
        svg("text", { x: left - 6, y: y(v) + 4, class: "axis", "text-anchor": "end" },
          share ? `${v}%` : String(v)),
      );
    }
    columns.forEach((b, i) => {
      const report = perBucket[i];
      const x = left + step * i + (step - barW) / 2;
      let base = 0;
      for (const k of keys) {
        const row = report.rows.find((r) => r.key === k);
        const count = row ? row.count : 0;
        if (!count) continue;
        const value = share ? row.percentage : count;
        const rect = svg("rect", {
          x, width: barW, y: y(base + value), height: Math.max(0.5, y(base) - y(base + value)),
          fill: palette.get(k), class: f.group === "outcome" ? "bar clickable" : "bar",
          "data-key": k, "data-bucket": b.from,
          onclick: () => f.group === "outcome" && drillHistory(k, b),
        }, svg("title", {}, `${k}, ${b.from === b.to ? b.from : `${b.from} – ${b.to}`}: ${count} (${percent(row.percentage)})`));
        chart.append(rect);
        base += value;
      }
      if (i % Math.ceil(columns.length / 24) === 0) {
        chart.append(svg("text", {
          x: x + barW / 2, y: height - bottom + 16, class: "axis", "text-anchor": "middle",
        }, b.label));
      }
    });
    chart.append(svg("line", { x1: left, x2: width - right, y1: y(0), y2: y(0), class: "baseline" }));
    $("chart").replaceChildren(chart);
    $("chart-title").textContent = `${f.group === "outcome" ? "Outcome" : "Category"} mix per ${
      columns.length && columns[0].label.includes("W") ? "week" : "day"}${share ? " (share)" : ""}`;
    $("legend").replaceChildren(...keys.map((k) =>
      el("li", {}, el("span", { class: "swatch", dataset: { colour: palette.get(k) } }), k)));
    for (const swatch of $("legend").querySelectorAll(".swatch")) swatch.style.background = swatch.dataset.colour;
  }

  /** a round tick step giving at most 5 steps up to v, and the axis top it reaches */
  function axis(v) {
    const rough = v / 5;
    const magnitude = 10 ** Math.floor(Math.log10(rough));
    const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= rough);
    const rounded = Math.max(1, step);
    return { step: rounded, top: Math.ceil(v / rounded) * rounded };
  }

  function renderTable() {
    const { buckets: columns, perBucket, total, filters: f } = current;
    const byOutcome = f.group === "outcome";
    const head = el("tr", {}, el("th", {}, byOutcome ? "Outcome" : "Category"),
      ...columns.map((b) => el("th", { class: "num" },
        el("button", { type: "button", class: "link", dataset: { bucket: b.from },
          title: `history of ${b.from} – ${b.to}`, onclick: () => drillHistory(null, b) }, b.label))),
      el("th", { class: "num" }, "Total"), el("th", { class: "num" }, "%"), el("th", { class: "num" }, "Revenue"));
    const whole = { from: f.from, to: f.to, label: `${f.from} – ${f.to}` };
    const body = total.rows.map((row) => {
      const swatch = current.colours.get(row.key);
      const name = el("th", { scope: "row" },
        el("span", { class: "swatch", dataset: { colour: swatch || "transparent" } }), row.key);
      if (byOutcome && row.key !== "-") {
        name.append(" ", el("button", { type: "button", class: "link small", dataset: { sample: row.key },
          onclick: () => drillSample(row.key) }, "sample"));
      }
      const cells = columns.map((b, i) => {
        const found = perBucket[i].rows.find((r) => r.key === row.key);
        return countCell(found ? found.count : 0, row.key, b, byOutcome, found ? found.percentage : 0);
      });
      return el("tr", { dataset: { key: row.key } }, name, ...cells,
        countCell(row.count, row.key, whole, byOutcome, row.percentage, "total"),
        el("td", { class: "num", dataset: { field: "percentage", value: row.percentage } }, percent(row.percentage)),
        el("td", { class: "num", dataset: { field: "revenue" } }, row.revenue));
    });
    const foot = el("tr", { class: "totals", dataset: { key: "*" } }, el("th", { scope: "row" }, "All"),
      ...columns.map((b, i) => el("td", { class: "num", dataset: { bucket: b.from } }, String(perBucket[i].total))),
      el("td", { class: "num", dataset: { bucket: "total" } }, String(total.total)), el("td", {}), el("td", {}));
    $("mix").replaceChildren(el("thead", {}, head), el("tbody", {}, ...body), el("tfoot", {}, foot));
    for (const swatch of $("mix").querySelectorAll(".swatch")) swatch.style.background = swatch.dataset.colour;
  }

  function countCell(count, outcome, bucket, clickable, share, name) {
    const text = String(count);
    const content = clickable && count > 0
      ? el("button", { type: "button", class: "link", title: `${outcome}: history`,
        onclick: () => drillHistory(outcome, bucket) }, text)
      : text;
    return el("td", {
      class: count ? "num" : "num zero", title: percent(share),
      dataset: { bucket: name || bucket.from, count: text },
    }, content);
  }

  // -- drill-down ----------------------------------------------------------------------------------

  const HISTORY_COLUMNS = [
    ["started", (r) => when(r.started_at)], ["kind", (r) => r.kind], ["id", (r) => r.id],
    ["project", (r) => r.project], ["agent", (r) => r.agent || ""], ["outcome", (r) => r.outcome],
    ["outcomes", (r) => r.outcomes.map((o) => o.code + (o.late ? " (late)" : "") + (o.corrected ? " (corrected)" : "")).join(", ")],
    ["duration s", (r) => (r.duration_seconds === null ? "" : String(Math.round(r.duration_seconds)))],
    ["corrections", (r) => r.corrections.map((c) => `${c.previous_code || "-"} → ${c.outcome_code}`).join(", ")],
    ["references", (r) => r.references.map((x) => `${x.kind}: ${x.reference}`).join(", ")],
  ];

  let drill = null; // {kind: "history"|"sample", params, rows, next}

  function showDrill(title, note) {
    $("drill").hidden = false;
    $("drill").dataset.state = "loading";
    $("drill-title").textContent = title;
    $("drill-note").textContent = note;
    $("drill-table").replaceChildren();
  }

  async function drillHistory(outcome, bucket) {
    const f = current.filters;
    const range = bucket.from === bucket.to ? bucket.from : `${bucket.from} – ${bucket.to}`;
    showDrill(`History: ${outcome ? `${outcome}, ` : ""}${range}${f.project ? `, ${f.project}` : ""}`,
      outcome
        ? "Every interaction any of whose selections (as corrected) shows the outcome; the mix counts each under the one that stands."
        : "Every interaction of the period.");
    const params = {
      project: f.project, outcome, interaction: f.interaction,
      date_from: bucket.from, date_to: bucket.to, limit: HISTORY_PAGE,
    };
    drill = { kind: "history", params, rows: [], next: null };
    await drillPage();
  }

  async function drillPage() {
    const mine = drill; // another drill-down started meanwhile: this answer is stale
    const params = { ...mine.params, cursor: mine.next };
    try {
      const page = await api("history", params);
      if (drill !== mine) return;
      drill.rows.push(...page.rows);
      drill.next = page.next_cursor;
      renderRows(drill.rows);
      $("drill-more").hidden = drill.next === null;
      $("drill-redraw").hidden = true;
      $("drill").dataset.state = "ready";
    } catch (error) {
      if (drill === mine) drillFailed(error);
    }
  }

  async function drillSample(outcome, seed) {
    const f = current.filters;
    showDrill(`Sample: ${outcome}, ${f.from} – ${f.to}`, "");
    // a seed of our own, below 2^53: JSON numbers above that lose digits in JS
    const drawn = seed ?? Math.floor(Math.random() * Number.MAX_SAFE_INTEGER);
    const mine = {
      kind: "sample", params: { outcome_code: outcome, date_from: f.from, date_to: f.to, n: SAMPLE_SIZE, seed: drawn },
    };
    drill = mine;
    try {
      const report = await api("sample", mine.params);
      if (drill !== mine) return;
      const s = report.sample;
      $("drill-note").textContent =
        `${s.rows.length} of ${s.population} interactions that show ${outcome} in every project, drawn with seed ${s.seed}` +
        " (the same seed over the same period draws the same rows).";
      $("drill").dataset.seed = String(s.seed);
      renderRows(s.rows);
      $("drill-more").hidden = true;
      $("drill-redraw").hidden = false;
      $("drill").dataset.state = "ready";
    } catch (error) {
      if (drill === mine) drillFailed(error);
    }
  }

  function drillFailed(error) {
    $("drill-note").textContent = error.message;
    $("drill").dataset.state = "error";
  }

  function renderRows(rows) {
    const head = el("tr", {}, ...HISTORY_COLUMNS.map(([name]) => el("th", {}, name)));
    const body = rows.map((r) => el("tr", { dataset: { id: `${r.kind}:${r.id}` } },
      ...HISTORY_COLUMNS.map(([name, value]) => el("td", { dataset: { field: name } }, value(r)))));
    if (!rows.length) body.push(el("tr", {}, el("td", { colspan: HISTORY_COLUMNS.length }, "No interactions.")));
    $("drill-table").replaceChildren(el("thead", {}, head), el("tbody", {}, ...body));
  }

  // -- wiring --------------------------------------------------------------------------------------

  function start() {
    takeKeyFromFragment();
    $("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(KEY, $("key").value.trim());
      $("key").value = "";
      open();
    });
    $("forget").addEventListener("click", () => askForKey("Key forgotten."));
    $("filters").addEventListener("submit", (event) => {
      event.preventDefault();
      const f = formFilters();
      history.replaceState(null, "", `${location.pathname}?${new URLSearchParams(f)}`);
      load(f);
    });
    $("filters").elements.scale.addEventListener("change", () => {
      if (!current) return;
      current.filters.scale = $("filters").elements.scale.value;
      renderChart();
    });
    $("drill-more").addEventListener("click", () => drillPage());
    $("drill-redraw").addEventListener("click", () => drillSample(drill.params.outcome_code));
    $("drill-close").addEventListener("click", () => { $("drill").hidden = true; });
    // a link with a key opened in this same tab changes only the fragment: no new page load
    window.addEventListener("hashchange", () => takeKeyFromFragment() && open());
    open();
  }

  function open() {
    if (!key()) {
      askForKey("");
      return;
    }
    $("key-form").hidden = true;
    $("dashboard").hidden = false;
    $("forget").hidden = false;
    const f = readFilters();
    showFilters(f);
    load(f);
  }

  document.addEventListener("DOMContentLoaded", start);
})();
