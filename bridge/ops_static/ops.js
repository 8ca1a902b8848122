// The ops page: polls /ops/api/cluster and /v2/dead-letters every second and draws them.
// No library, no build step, no inline script (the page is served with a strict CSP).
"use strict";

(() => {
  const POLL_MS = 1000;
  const SVG = "http://www.w3.org/2000/svg";
  const COLORS = ["#0b5cad", "#c62828", "#1a7f37", "#8e44ad", "#d35400", "#00838f", "#6d4c41", "#455a64"];
  let token = ""; // the API token: in this variable only, never stored
  let polling = false;

  const $ = (id) => document.getElementById(id);

  async function api(path, options = {}) {
    const headers = Object.assign({}, options.headers || {});
    if (token) headers.Authorization = "Bearer " + token;
    const response = await fetch(path, Object.assign({}, options, { headers, cache: "no-store" }));
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    if (!response.ok) {
      const error = new Error((body && body.detail) || response.status + " " + response.statusText);
      error.status = response.status;
      throw error;
    }
    return body;
  }

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function row(cells) {
    const tr = document.createElement("tr");
    for (const cell of cells) tr.appendChild(cell instanceof Node ? cell : el("td", cell));
    return tr;
  }

  function replaceRows(tbody, rows) {
    tbody.replaceChildren(...rows);
  }

  function uptime(seconds) {
    const s = Math.floor(seconds);
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    if (d) return d + "d " + h + "h";
    if (h) return h + "h " + String(m).padStart(2, "0") + "m";
    return m + "m " + String(s % 60).padStart(2, "0") + "s";
  }

  function setStatus(text, ok) {
    const status = $("status");
    status.textContent = text;
    status.className = "status " + (ok ? "ok" : "bad");
  }

  // -- cluster ---------------------------------------------------------------------------

  function renderNodes(data) {
    let v3 = 0, v2 = 0;
    const rows = data.nodes.map((n) => {
      v3 += n.v3_connections;
      v2 += n.legacy_connections;
      const tr = row([
        el("td", n.node_id + (n.node_id === data.self ? " (this page)" : "")),
        n.version,
        uptime(n.uptime),
        el("td", n.v3_connections, "num v3"),
        el("td", n.legacy_connections, "num v2"),
        el("td", n.ready ? "ready" : "not ready", n.ready ? "ok" : "bad"),
        n.seen_ago < 1 ? "now" : n.seen_ago.toFixed(0) + " s ago",
      ]);
      tr.dataset.node = n.node_id;
      return tr;
    });
    replaceRows($("nodes").tBodies[0], rows);
    $("total-v3").textContent = v3;
    $("total-v2").textContent = v2;
    const warning = $("cluster-warning");
    warning.hidden = !data.warning;
    warning.textContent = data.warning || "";
  }

  // -- traffic chart (hand-drawn SVG) ----------------------------------------------------

  function svg(tag, attributes, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function renderChart(traffic) {
    const chart = $("chart");
    const width = 640, height = 180, left = 44, right = 8, top = 8, bottom = 22;
    const keys = Object.keys(traffic.series).sort();
    const points = Math.max(2, ...keys.map((k) => traffic.series[k].length));
    let max = 0;
    for (const k of keys) for (const v of traffic.series[k]) max = Math.max(max, v);
    const yMax = max > 0 ? niceCeil(max) : 1;
    const x = (i) => left + (i * (width - left - right)) / (points - 1);
    const y = (v) => top + (height - top - bottom) * (1 - v / yMax);
    const parts = [];
    for (const fraction of [0, 0.5, 1]) {
      const yy = y(yMax * fraction);
      parts.push(svg("line", { x1: left, x2: width - right, y1: yy, y2: yy, stroke: "#d8dde3", "stroke-width": 1 }));
      parts.push(svg("text", { x: left - 4, y: yy + 4, "text-anchor": "end", "font-size": 10, fill: "#68727d" }, format(yMax * fraction)));
    }
    const span = Math.round(((points - 1) * traffic.step) / 60);
    parts.push(svg("text", { x: left, y: height - 6, "font-size": 10, fill: "#68727d" }, "-" + span + " min"));
    parts.push(svg("text", { x: width - right, y: height - 6, "text-anchor": "end", "font-size": 10, fill: "#68727d" }, "now"));
    const legend = [];
    keys.forEach((key, n) => {
      const color = COLORS[n % COLORS.length];
      const values = traffic.series[key];
      const offset = points - values.length;
      const coords = values.map((v, i) => x(i + offset).toFixed(1) + "," + y(v).toFixed(1)).join(" ");
      parts.push(svg("polyline", { points: coords, fill: "none", stroke: color, "stroke-width": 1.5 }));
      if (values.length) {
        const last = values.length - 1;
        parts.push(svg("circle", { cx: x(last + offset), cy: y(values[last]), r: 2.5, fill: color }));
      }
      const item = el("li");
      const swatch = svg("svg", { width: 10, height: 10, class: "swatch" });
      swatch.appendChild(svg("rect", { width: 10, height: 10, fill: color }));
      item.append(swatch, key + ": " + format(values[values.length - 1] || 0) + "/s");
      item.dataset.series = key;
      legend.push(item);
    });
    if (!keys.length) {
      parts.push(svg("text", { x: width / 2, y: height / 2, "text-anchor": "middle", "font-size": 12, fill: "#68727d" }, "no client messages yet"));
    }
    chart.replaceChildren(...parts);
    $("legend").replaceChildren(...legend);
  }

  function niceCeil(v) {
    const power = Math.pow(10, Math.floor(Math.log10(v)));
    for (const step of [1, 2, 5, 10]) if (v <= step * power) return step * power;
    return 10 * power;
  }

  function format(v) {
    return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2).replace(/\.?0+$/, "") || "0";
  }

  // -- groups and the mode switch ----------------------------------------------------------

  function renderGroups(data) {
    $("global-mode").textContent = data.global_mode;
    const rows = data.groups.map((g) => {
      const select = el("select", null, "mode-select");
      for (const [value, label] of [["", "(global)"], ["open", "open"], ["warn", "warn"], ["closed", "closed"]]) {
        const option = el("option", label);
        option.value = value;
        select.appendChild(option);
      }
      select.value = g.own_mode ? g.mode : "";
      select.addEventListener("change", () => setMode(g.group_id, select.value || null));
      const change = el("td");
      change.appendChild(select);
      const tr = row([
        el("td", g.group_id, "group-id"),
        g.legacy_id || "-",
        el("td", g.connections, "num connections"),
        el("td", g.v2_clients, "num v2-clients"),
        el("td", g.mode + (g.own_mode ? "" : " (global)"), "mode " + g.mode),
        change,
      ]);
      tr.dataset.group = g.group_id;
      if (g.legacy_id) tr.dataset.legacy = g.legacy_id;
      return tr;
    });
    const tbody = $("groups").tBodies[0];
    // A select being used is not replaced under the user's pointer.
    if (!tbody.contains(document.activeElement)) replaceRows(tbody, rows);
  }

  async function setMode(group, mode) {
    const result = $("mode-result");
    const body = group ? { mode, group_id: group } : { mode };
    try {
      await api("/v2/mode", { method: "PUT", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      result.textContent = (group ? "group " + group : "global") + ": " + (mode || "removed") + " (every node applies it within a second or so)";
      result.className = "ok";
    } catch (error) {
      result.textContent = "not changed: " + error.message + (error.status === 401 ? " (enter the API token above)" : "");
      result.className = "bad";
    }
    if (document.activeElement instanceof HTMLElement) document.activeElement.blur();
    refresh();
  }

  // -- presence ------------------------------------------------------------------------------

  async function showPresence(group) {
    const list = $("presence"), title = $("presence-title");
    try {
      const data = await api("/ops/api/presence/" + encodeURIComponent(group));
      title.textContent = data.clients.length + " online in " + data.group_id + (data.legacy_id ? " (" + data.legacy_id + ")" : "");
      title.className = "muted";
      list.replaceChildren(...data.clients.map((c) => el("li", c)));
    } catch (error) {
      title.textContent = error.message;
      title.className = "bad";
      list.replaceChildren();
    }
  }

  // -- dead letters --------------------------------------------------------------------------

  function renderDeadLetters(data) {
    const counts = Object.entries(data.counts).map(([code, n]) => code + ": " + n);
    $("dl-counts").textContent = counts.length ? "counted (all nodes): " + counts.join(", ") : "none recorded";
    const rows = data.dead_letters.map((d) => {
      const iso = new Date(d.at * 1000).toISOString();
      const when = el("td", iso.slice(11, 19), "when");
      when.title = iso;
      const group = d.group_id + (d.group_legacy ? " (" + d.group_legacy + ")" : "");
      const client = (d.client_id || "-") + (d.client_legacy ? " (" + d.client_legacy + ")" : "");
      const sample = el("td");
      sample.appendChild(el("code", d.sample + (d.size ? " (" + d.size + " bytes)" : ""), "sample"));
      const tr = row([when, el("td", d.code, "code"), d.node, group, client, d.detail, sample]);
      tr.dataset.code = d.code;
      return tr;
    });
    replaceRows($("dead-letters").tBodies[0], rows);
  }

  // -- polling -------------------------------------------------------------------------------

  async function refresh() {
    if (polling) return;
    polling = true;
    try {
      const cluster = await api("/ops/api/cluster");
      renderNodes(cluster);
      renderChart(cluster.traffic);
      renderGroups(cluster);
      renderDeadLetters(await api("/v2/dead-letters?limit=50"));
      setStatus("live · updated " + new Date().toLocaleTimeString() + " from node " + cluster.self, true);
    } catch (error) {
      setStatus(error.status === 401 ? "enter the API token to see the cluster" : "not updated: " + error.message, false);
    } finally {
      polling = false;
    }
  }

  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    token = $("token").value.trim();
    $("token").value = "";
    refresh();
    const group = $("presence-group").value.trim();
    if (group) showPresence(group);
  });
  $("mode-form").addEventListener("submit", (event) => {
    event.preventDefault();
    setMode($("mode-group").value.trim() || null, $("mode-value").value || null);
  });
  $("presence-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const group = $("presence-group").value.trim();
    if (group) showPresence(group);
  });
  refresh();
  setInterval(refresh, POLL_MS);
})();
