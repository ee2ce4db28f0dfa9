// The dashboard's script: it opens one server-sent event stream and
// renders each state it receives; it never polls. Text from the cluster is
// set with textContent only, never parsed as HTML.
"use strict";

const canAct = document.body.dataset.canAct === "true";
let state = null;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function ago(iso) {
  if (!iso) return "";
  const s = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
  if (s < 60) return s + "s ago";
  if (s < 3600) return Math.floor(s / 60) + "m ago";
  return Math.floor(s / 3600) + "h ago";
}

function clock(iso) {
  return iso ? new Date(iso).toLocaleTimeString() : "";
}

function groupState(g) {
  if (g.suspended) return el("span", { class: "warn" }, "Suspended");
  if (g.moving) return el("span", { class: "warn" }, "Moving " + g.moving);
  if (!g.active) return el("span", { class: "bad" }, "No node");
  if (g.healthy) return el("span", { class: "ok" }, "Online");
  return el("span", { class: "warn" }, "Coming up or unhealthy");
}

function renderGroups(groups) {
  const body = document.querySelector("#groups tbody");
  body.replaceChildren(...groups.map(g => {
    const standbys = el("td", { class: "standbys" }, ...(g.standbys || []).map(s =>
      el("span", { class: "standby " + (s.ready ? "ok" : "bad"), title: s.why, "data-node": s.node },
        s.node + (s.ready ? " ✓ ready" : " ✗ " + s.why))));
    if (!g.standbys || g.standbys.length === 0) standbys.append(el("span", { class: "muted" }, "none"));
    const row = el("tr", { "data-group": g.name },
      el("td", { class: "name" }, g.name),
      el("td", { class: "state" }, groupState(g)),
      el("td", { class: "active" }, g.active || "—"),
      standbys,
      el("td", { class: "decision" }, g.reason || "", el("div", { class: "muted" }, g.decided ? clock(g.decided) : "")),
      el("td", { class: "move" }, g.lastMove || ""),
      el("td", { class: "source" }, g.source || el("span", { class: "muted" }, "applied by hand")));
    if (canAct) {
      const others = (g.nodes || []).filter(n => n !== g.active);
      row.append(el("td", { class: "actions" },
        el("button", { type: "button", className: "switchover", disabled: others.length === 0, onclick: () => ask(g, "switchover", others) }, "Switch over…"),
        g.suspended
          ? el("button", { type: "button", className: "resume", onclick: () => ask(g, "resume") }, "Resume")
          : el("button", { type: "button", className: "suspend", onclick: () => ask(g, "suspend") }, "Suspend"),
        el("button", { type: "button", className: "clear-failures", onclick: () => ask(g, "clear-failures") }, "Clear failures")));
    }
    return row;
  }));
}

function renderNodes(nodes) {
  const body = document.querySelector("#nodes tbody");
  body.replaceChildren(...nodes.map(n => el("tr", { "data-node": n.name },
    el("td", {}, n.name),
    el("td", { class: n.status === "Ready" ? "ok" : "bad" }, n.status + (n.draining ? " (draining)" : "") + (n.suspended ? " (suspended)" : "")),
    el("td", {}, n.leaseRenewedAgo ? n.leaseRenewedAgo + " ago" : "—"),
    el("td", { class: n.health === "Healthy" ? "ok" : "warn" }, n.health),
    el("td", {}, n.takedownBudget || "—"),
    el("td", { class: "holds" }, (n.activeGroups || []).join(", ") || "—"))));
}

function renderSources(sources) {
  const body = document.querySelector("#sources tbody");
  if (sources.length === 0) {
    body.replaceChildren(el("tr", {}, el("td", { colSpan: 5, class: "muted" }, "No manifest source: objects were applied by hand.")));
    return;
  }
  body.replaceChildren(...sources.map(s => el("tr", { "data-source": s.name },
    el("td", {}, s.name), el("td", {}, s.path), el("td", {}, s.revision || "—"),
    el("td", {}, s.appliedAt ? ago(s.appliedAt) : "—"),
    el("td", { class: s.refused ? "bad" : "muted" }, s.refused || "none"))));
}

function renderEvents(events) {
  const body = document.querySelector("#events tbody");
  body.replaceChildren(...events.map(e => el("tr", { class: e.type === "Warning" ? "warn" : "" },
    el("td", {}, clock(e.time)), el("td", {}, e.type), el("td", {}, e.reason), el("td", {}, e.object),
    el("td", {}, e.message + (e.count ? " (×" + e.count + ")" : "")), el("td", {}, e.by || ""))));
}

function render(s) {
  state = s;
  const err = document.getElementById("store-error");
  err.hidden = !s.error;
  err.textContent = s.error ? s.error + " — showing the last known state" : "";
  renderGroups(s.groups);
  renderNodes(s.nodes);
  renderSources(s.sources);
  renderEvents(s.events);
}

function notice(text, commit, bad) {
  const n = document.getElementById("notice");
  n.className = "notice" + (bad ? " bad" : "");
  document.getElementById("notice-text").textContent = text;
  const c = document.getElementById("notice-commit");
  c.hidden = !commit;
  c.textContent = commit || "";
  n.hidden = false;
}

const verbs = {
  "switchover": g => "Switch group " + g.name + " over? Its sites stop on " + (g.active || "no node") + " and start on the node you choose.",
  "suspend": g => "Suspend group " + g.name + "? Nothing is started, stopped or failed over until it is resumed.",
  "resume": g => "Resume group " + g.name + "?",
  "clear-failures": g => "Clear the failure history of group " + g.name + "? Automatic moves may use every node again.",
};

function ask(g, action, nodes) {
  const dlg = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = verbs[action](g);
  const label = document.getElementById("confirm-node-label");
  const sel = document.getElementById("confirm-node");
  label.hidden = action !== "switchover";
  sel.replaceChildren(...(nodes || []).map(n => el("option", { value: n }, n)));
  dlg.returnValue = "";
  dlg.onclose = () => {
    if (dlg.returnValue === "ok") act(g.name, action, action === "switchover" ? sel.value : "");
  };
  dlg.showModal();
}

async function act(group, action, node) {
  try {
    const resp = await fetch("/api/groups/" + encodeURIComponent(group) + "/" + action, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Sitekeeper-Action": "1" },
      body: JSON.stringify({ node }),
    });
    const r = await resp.json();
    if (r.commit) notice(r.error, r.commit, true);
    else if (!resp.ok) notice(r.error || resp.statusText, "", true);
    else notice(r.message, "", false);
  } catch (e) {
    notice("The request did not reach Sitekeeper: " + e, "", true);
  }
}

function connect() {
  const conn = document.getElementById("conn");
  const es = new EventSource("/api/stream");
  es.addEventListener("state", ev => {
    conn.textContent = "live";
    conn.className = "conn live";
    render(JSON.parse(ev.data));
  });
  es.onerror = () => {
    // EventSource reconnects by itself; say so meanwhile.
    conn.textContent = "reconnecting…";
    conn.className = "conn down";
  };
}

document.getElementById("notice-close").onclick = () => { document.getElementById("notice").hidden = true; };
connect();
