"""The review page: one HTML document with its CSS and script inline (no CDN, no build step, works offline).

The script asks ``/api/state`` for the groups (riskiest first), draws them with DOM calls (file names are
set as text, never as HTML), and sends each decision as it is made (``POST /api/decision`` with the
session token in the ``X-Maya-Token`` header). Keys: j/k or arrows next/previous group, h/l member,
x not a duplicate, p keep this one instead, s split here, w whole group is wrong, c looks right, v
compare, Esc close, ? help.
"""

from __future__ import annotations

import html
import json

_CSS = """
:root { --fg:#1d232a; --muted:#5d6873; --line:#d6dbe0; --bg:#f5f6f8; --card:#fff; --accent:#1f6feb;
        --bad:#c62828; --good:#2e7d32; --warn:#b26a00; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color:var(--fg); background:var(--bg); }
header { position:sticky; top:0; z-index:5; background:#fff; border-bottom:1px solid var(--line); padding:8px 16px;
         display:flex; gap:12px; align-items:center; flex-wrap:wrap; }
header h1 { font-size:16px; margin:0 8px 0 0; }
header .sub { color:var(--muted); }
header .spacer { flex:1; }
button { font:inherit; border:1px solid var(--line); background:#fff; border-radius:6px; padding:3px 8px; cursor:pointer; }
button:hover { border-color:var(--accent); }
button.on { background:var(--accent); color:#fff; border-color:var(--accent); }
button.danger.on { background:var(--bad); border-color:var(--bad); }
button.primary { background:var(--accent); color:#fff; border-color:var(--accent); }
main { padding:12px 16px 80px; }
section.group { background:var(--card); border:1px solid var(--line); border-radius:10px; margin:0 0 14px; padding:10px 12px; }
section.group.current { outline:3px solid var(--accent); outline-offset:1px; }
section.group.wrong { border-color:var(--bad); background:#fff6f6; }
section.group.confirmed { border-color:var(--good); }
.ghead { display:flex; gap:8px; align-items:center; flex-wrap:wrap; margin-bottom:8px; }
.ghead h2 { font-size:15px; margin:0; }
.badge { font-size:12px; padding:1px 7px; border-radius:10px; background:#eef1f4; color:var(--muted); }
.badge.risk { background:#fff0d6; color:var(--warn); }
.badge.bad { background:#fde2e2; color:var(--bad); }
.badge.good { background:#e3f4e4; color:var(--good); }
.members { display:flex; gap:10px; flex-wrap:wrap; align-items:stretch; }
figure.member { margin:0; width:250px; border:1px solid var(--line); border-radius:8px; padding:5px; background:#fff; position:relative; }
figure.member.selected { border-color:var(--accent); box-shadow:0 0 0 2px var(--accent); }
figure.member.kept { border-color:var(--good); box-shadow:0 0 0 1px var(--good) inset; }
figure.member.rejected { opacity:.55; }
figure.member.rejected img { filter:grayscale(1); }
figure.member.splitstart { margin-left:18px; }
figure.member.splitstart::before { content:""; position:absolute; left:-15px; top:0; bottom:0; border-left:3px dashed var(--warn); }
.thumb { width:238px; height:180px; display:flex; align-items:center; justify-content:center; background:#f0f2f4; border-radius:5px; cursor:zoom-in; }
.thumb img { max-width:238px; max-height:180px; }
figcaption { font-size:12px; margin-top:4px; }
figcaption .name { font-weight:600; overflow-wrap:anywhere; }
figcaption .path { color:var(--muted); overflow-wrap:anywhere; }
figcaption .scores { margin:2px 0; }
.tag { display:inline-block; font-size:11px; padding:0 5px; border-radius:4px; background:#eef1f4; margin-right:3px; }
.tag.clip { background:#fff0d6; color:var(--warn); }
.tag.kept { background:#e3f4e4; color:var(--good); }
.tag.no { background:#fde2e2; color:var(--bad); }
.mbtns { display:flex; gap:4px; flex-wrap:wrap; margin-top:4px; }
.mbtns button { font-size:12px; padding:2px 6px; }
.overlay { position:fixed; inset:0; background:rgba(10,14,20,.95); z-index:20; display:none; color:#fff; }
.overlay.open { display:flex; flex-direction:column; }
.overlay .bar { display:flex; gap:10px; align-items:center; padding:8px 14px; }
.overlay .bar .spacer { flex:1; }
.overlay .bar button { background:#fff; }
#compare .pair { flex:1; display:flex; gap:8px; padding:0 8px 8px; min-height:0; }
#compare .side { flex:1; display:flex; flex-direction:column; min-width:0; }
#compare .side .img { flex:1; overflow:auto; background:#111; border-radius:6px; }
#compare .side img { display:block; }
#compare .side.fit img { max-width:100%; max-height:100%; margin:auto; }
#compare .cap { font-size:12px; padding:4px 2px; overflow-wrap:anywhere; }
#plan .box, #help .box { background:#fff; color:var(--fg); margin:40px auto; width:min(900px, 94vw); max-height:80vh; overflow:auto; border-radius:10px; padding:16px; }
#plan table { border-collapse:collapse; width:100%; font-size:12px; }
#plan td { border-top:1px solid var(--line); padding:3px 4px; overflow-wrap:anywhere; vertical-align:top; }
#actions { font-size:12px; color:var(--muted); }
#toast { position:fixed; bottom:14px; left:50%; transform:translateX(-50%); background:#1d232a; color:#fff; padding:8px 14px;
         border-radius:8px; display:none; z-index:30; max-width:80vw; }
#toast.error { background:var(--bad); }
kbd { border:1px solid var(--line); border-bottom-width:2px; border-radius:4px; padding:0 4px; font-size:12px; background:#fafbfc; color:var(--fg); }
"""

_SCRIPT = r"""
"use strict";
const TOKEN = JSON.parse(document.getElementById("maya-token").textContent);
let S = null, cur = 0, sel = {};
const CLAUSES = {"phash": "pHash", "phash+clip": "pHash + model", "clip": "model only", "clip-majority": "model, by most of the group", "phash-majority": "pHash, by most of the group", "grid": "most cells agree pixel for pixel", "exact": "exact copy",
                 "via others": "via other members"};  // state, current group position, selected member index per group

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
  }
  for (const k of kids) if (k != null) e.append(k);
  return e;
}
function size(n) { if (n == null) return ""; const u = ["B","KB","MB","GB","TB"]; let i = 0;
  while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; } return (i ? n.toFixed(1) : n) + " " + u[i]; }
function toast(msg, error) { const t = document.getElementById("toast"); t.textContent = msg;
  t.className = error ? "error" : ""; t.style.display = "block"; clearTimeout(toast.t);
  toast.t = setTimeout(() => t.style.display = "none", error ? 6000 : 2500); }
async function api(path, payload) {
  const opts = {headers: {"X-Maya-Token": TOKEN}, credentials: "same-origin"};
  if (payload !== undefined) { opts.method = "POST"; opts.body = JSON.stringify(payload);
    opts.headers["Content-Type"] = "application/json"; }
  const r = await fetch(path, opts);
  const data = await r.json().catch(() => ({error: r.statusText}));
  if (!r.ok) throw new Error(data.error || r.statusText);
  return data;
}

function active(g, decision, path) {
  return g.decisions.some(d => d.decision === decision && (path == null || d.path === path));
}
function renderGroup(g) {
  const st = g.state, r = g.risk;
  const sec = el("section", {class: "group" + (st.wrong ? " wrong" : "") + (st.confirmed ? " confirmed" : ""),
                             id: "g-" + g.group_id, "data-group": g.group_id, "data-position": g.position});
  const head = el("div", {class: "ghead"},
    el("h2", {text: "Group " + g.group_id}),
    r.chained ? el("span", {class: "badge risk", text: "chained"}) : null,
    r.model_only ? el("span", {class: "badge risk", text: r.model_only + " by the model only"}) : null,
    el("span", {class: "badge", text: r.files + " files"}),
    g.reclaimable_bytes ? el("span", {class: "badge", text: size(g.reclaimable_bytes) + " reclaimable"}) : null,
    st.wrong ? el("span", {class: "badge bad", text: "whole group is wrong"}) : null,
    st.confirmed ? el("span", {class: "badge good", text: "looks right"}) : null,
    st.reviewed ? el("span", {class: "badge good", text: "reviewed"}) : el("span", {class: "badge", text: "not reviewed"}),
    el("span", {style: "flex:1"}),
    el("button", {class: st.confirmed ? "on" : "", "data-act": "confirm", title: "c",
                  onclick: () => decide(g, "confirm", null), text: "Looks right"}),
    el("button", {class: "danger" + (st.wrong ? " on" : ""), "data-act": "group_wrong", title: "w",
                  onclick: () => decide(g, "group_wrong", null), text: "Whole group is wrong"}),
    el("button", {"data-act": "compare", title: "v", onclick: () => compare(g), text: "Compare"}));
  if (g.weakest_link && r.chained) {
    const w = g.weakest_link;
    head.append(el("div", {class: "path", style: "width:100%;font-size:12px;color:var(--muted)",
      text: "weakest link: " + w.a.split("/").pop() + " ~ " + w.b.split("/").pop() + " (d " + w.phash_distance +
            (w.clip_similarity != null ? ", sim " + w.clip_similarity.toFixed(3) : "") + ")"}));
  }
  sec.append(head);
  const row = el("div", {class: "members"});
  const lazy = S.groups.length * 4 > 400;
  for (const m of g.members) {
    const kept = st.kept.includes(m.path), rejected = st.rejected.includes(m.path), split = st.splits.includes(m.path);
    const fig = el("figure", {class: "member" + (kept ? " kept" : "") + (rejected ? " rejected" : "") +
                               (split ? " splitstart" : "") + ((sel[g.group_id] || 0) === m.index ? " selected" : ""),
                              "data-index": m.index, "data-path": m.path});
    const img = el("img", {src: "preview/" + g.group_id + "/" + m.index, alt: m.name});
    if (lazy) img.loading = "lazy";
    const thumb = el("div", {class: "thumb", title: "compare with the kept file (v)",
                             onclick: () => { select(g, m.index); compare(g); }}, img);
    const sim = m.clip_similarity == null ? "" : " · sim " + m.clip_similarity.toFixed(3);
    const cap = el("figcaption", {},
      el("div", {class: "name", text: m.name}),
      el("div", {class: "path", text: m.path}),
      el("div", {class: "scores"},
        kept ? el("span", {class: "tag kept", text: "kept"}) : null,
        rejected ? el("span", {class: "tag no", text: "not a duplicate"}) : null,
        m.index ? el("span", {class: "tag" + (m.clause === "clip" ? " clip" : ""),
                             title: "the clause that admitted it: " + m.clause, text: CLAUSES[m.clause] || m.clause}) : null,
        m.exact ? el("span", {class: "tag", text: "exact"}) : null,
        el("span", {text: "d " + m.phash_distance + sim}),
        m.width ? el("span", {text: " · " + m.width + "×" + m.height}) : null,
        m.size_bytes != null ? el("span", {text: " · " + size(m.size_bytes)}) : null),
      m.moved_to ? el("div", {class: "path", text: "moved to " + m.moved_to}) : null);
    const b = el("div", {class: "mbtns"});
    if (!kept) {
      b.append(el("button", {class: "danger" + (rejected ? " on" : ""), "data-act": "not_duplicate", title: "x",
                             onclick: () => decide(g, "not_duplicate", m.path), text: "Not a duplicate"}));
    }
    if (!kept || active(g, "keep", m.path))
      b.append(el("button", {class: active(g, "keep", m.path) ? "on" : "", "data-act": "keep", title: "p",
                             onclick: () => decide(g, "keep", m.path), text: "Keep this one instead"}));
    if (m.index > 0) b.append(el("button", {class: split ? "on" : "", "data-act": "split", title: "s",
                                            onclick: () => decide(g, "split", m.path), text: "Split here"}));
    b.append(el("label", {title: "choose two to compare"},
      el("input", {type: "checkbox", class: "cmp", onclick: (e) => e.stopPropagation()}), " compare"));
    cap.append(b);
    fig.append(thumb, cap);
    fig.addEventListener("click", (e) => { if (e.target.tagName !== "BUTTON" && e.target.tagName !== "INPUT") select(g, m.index); });
    row.append(fig);
  }
  sec.append(row);
  return sec;
}
function renderHeader() {
  const run = S.run, reviewed = S.groups.filter(g => g.state.reviewed).length;
  document.getElementById("title").textContent = "run " + run.run_id + " · " + run.mode + (run.model ? " · " + run.model : "") +
    " · " + S.groups.length + " groups · " + reviewed + " reviewed";
  const a = document.getElementById("actions"); a.textContent = "";
  for (const x of S.actions.slice(0, 3)) {
    a.append(el("span", {text: (x.kind === "move" ? "moved " : "linked ") + x.done + " files" +
                                (x.undone_at ? " (undone: " + x.restored + " restored) " : " ")}),
             x.undone_at ? "" : el("button", {"data-act": "undo", "data-action": x.action_id,
                                              onclick: () => undo(x.action_id), text: "Undo"}), " ");
  }
}
function render() {
  renderHeader();
  const main = document.getElementById("groups"); main.textContent = "";
  document.body.removeAttribute("data-ready");
  if (!S.groups.length) main.append(el("p", {text: "This run found no groups: nothing to review."}));
  // in batches, so the riskiest groups are on screen at once even when a run has thousands
  const todo = S.groups.slice(), mine = render.calls = (render.calls || 0) + 1;
  const batch = () => {
    if (mine !== render.calls) return;  // a newer render started
    const frag = document.createDocumentFragment();
    for (const g of todo.splice(0, 150)) frag.append(renderGroup(g));
    main.append(frag);
    if (todo.length) return setTimeout(batch, 0);
    focusGroup(cur, false);
    document.body.setAttribute("data-ready", "1");
  };
  batch();
  focusGroup(cur, false);
}
function replaceGroup(g) {
  const i = S.groups.findIndex(x => x.group_id === g.group_id);
  S.groups[i] = g;
  const drawn = document.getElementById("g-" + g.group_id);
  if (drawn) drawn.replaceWith(renderGroup(g));
  focusGroup(cur, false); renderHeader();
}
async function decide(g, decision, path) {
  const on = decision === "keep" ? active(g, "keep", path) : (path == null ? active(g, decision, null) : active(g, decision, path));
  try { replaceGroup(await api("api/decision", {group_id: g.group_id, decision, path, withdraw: on})); }
  catch (e) { toast(e.message, true); }
}
function focusGroup(i, scroll) {
  if (!S.groups.length) return;
  cur = Math.max(0, Math.min(S.groups.length - 1, i));
  document.querySelectorAll("section.group.current").forEach(s => s.classList.remove("current"));
  const s = document.getElementById("g-" + S.groups[cur].group_id);
  if (!s) return;
  s.classList.add("current");
  if (scroll) s.scrollIntoView({block: "nearest", behavior: "smooth"});
}
function select(g, index) {
  sel[g.group_id] = index; focusGroup(S.groups.indexOf(g), false);
  const s = document.getElementById("g-" + g.group_id);
  s.querySelectorAll("figure.member").forEach(f => f.classList.toggle("selected", +f.dataset.index === index));
}
function compare(g) {
  const s = document.getElementById("g-" + g.group_id);
  let picked = [...s.querySelectorAll("figure.member")].filter(f => f.querySelector("input.cmp").checked).map(f => +f.dataset.index);
  if (picked.length !== 2) {
    const keptPath = g.state.kept[0], k = g.members.find(m => m.path === keptPath).index;
    const other = sel[g.group_id] && sel[g.group_id] !== k ? sel[g.group_id] : g.members.find(m => m.index !== k)?.index;
    picked = [k, other ?? k];
  }
  const o = document.getElementById("compare"), pair = o.querySelector(".pair"); pair.textContent = "";
  for (const i of picked) {
    const m = g.members[i];
    pair.append(el("div", {class: "side fit"},
      el("div", {class: "cap", text: m.path + " · " + (m.width ? m.width + "×" + m.height + " · " : "") + size(m.size_bytes) +
                                     (i ? " · d " + m.phash_distance + (m.clip_similarity == null ? "" : " · sim " + m.clip_similarity.toFixed(3)) : " · kept")}),
      el("div", {class: "img"}, el("img", {src: "preview/" + g.group_id + "/" + i + "?full=1", alt: m.name}))));
  }
  document.getElementById("cmp-title").textContent = "Group " + g.group_id + ": full size (f: fit / actual pixels, Esc: close)";
  o.classList.add("open");
}
function closeOverlays() { document.querySelectorAll(".overlay.open").forEach(o => o.classList.remove("open")); }
let PLAN = null;
async function plan(kind) {
  try { PLAN = await api("api/plan", {kind}); } catch (e) { return toast(e.message, true); }
  const o = document.getElementById("plan"), box = o.querySelector(".box"); box.textContent = "";
  const verb = kind === "move" ? "move" : "replace by links";
  box.append(el("h2", {text: "Dry run: " + verb + " " + PLAN.files + " files (" + size(PLAN.bytes) + ") of " + PLAN.groups + " reviewed group" + (PLAN.groups === 1 ? "" : "s")}),
    el("p", {text: "Nothing has changed yet. Files go to " + PLAN.dest + " (their full path mirrored), and an undo manifest is written first." +
                   (PLAN.gone ? " " + PLAN.gone + " planned files are gone already (moved before?) and are left out." : "")}));
  const t = el("table");
  for (const a of PLAN.actions) t.append(el("tr", {}, el("td", {text: a.path}), el("td", {text: kind === "move" ? "→ " + a.backup : "→ link to " + a.keep}), el("td", {text: size(a.size_bytes)})));
  box.append(t, el("p", {},
    el("button", {class: "primary", id: "confirm-act", onclick: act, text: "Confirm: " + verb + " " + PLAN.files + " files"}), " ",
    el("button", {onclick: closeOverlays, text: "Cancel"})));
  if (!PLAN.files) box.querySelector("#confirm-act").disabled = true;
  o.classList.add("open");
}
async function act() {
  try {
    const r = await api("api/act", {kind: PLAN.kind, plan_id: PLAN.plan_id});
    closeOverlays();
    toast((PLAN.kind === "move" ? "moved " : "linked ") + r.done + " of " + r.files + " files" +
          (r.skipped.length ? "; left alone: " + r.skipped.map(s => s.path + " (" + s.status + ")").join(", ") : ""), r.skipped.length > 0);
    await load();
  } catch (e) { toast(e.message, true); }
}
async function undo(id) {
  try { const r = await api("api/undo", {action_id: id}); toast("restored " + r.restored + " of " + r.files + " files"); await load(); }
  catch (e) { toast(e.message, true); }
}
async function load() {
  try { S = await api("api/state"); render(); }
  catch (e) { toast("cannot load the review: " + e.message, true); }
}
document.addEventListener("keydown", (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey || e.target.tagName === "INPUT") return;
  if (e.key === "Escape") return closeOverlays();
  if (e.key === "?") return document.getElementById("help").classList.toggle("open");
  if (document.getElementById("compare").classList.contains("open")) {
    if (e.key === "f") document.querySelectorAll("#compare .side").forEach(s => s.classList.toggle("fit"));
    return;
  }
  if (document.querySelector(".overlay.open") || !S || !S.groups.length) return;
  const g = S.groups[cur], i = sel[g.group_id] || 0, m = g.members[i];
  const keys = {
    j: () => focusGroup(cur + 1, true), ArrowDown: () => focusGroup(cur + 1, true),
    k: () => focusGroup(cur - 1, true), ArrowUp: () => focusGroup(cur - 1, true),
    l: () => select(g, Math.min(g.members.length - 1, i + 1)), ArrowRight: () => select(g, Math.min(g.members.length - 1, i + 1)),
    h: () => select(g, Math.max(0, i - 1)), ArrowLeft: () => select(g, Math.max(0, i - 1)),
    x: () => decide(g, "not_duplicate", m.path), p: () => decide(g, "keep", m.path), s: () => decide(g, "split", m.path),
    w: () => decide(g, "group_wrong", null), c: () => decide(g, "confirm", null), v: () => compare(g),
  };
  if (keys[e.key]) { e.preventDefault(); keys[e.key](); }
});
document.getElementById("plan-move").addEventListener("click", () => plan("move"));
document.getElementById("plan-link").addEventListener("click", () => plan("link"));
document.getElementById("help-btn").addEventListener("click", () => document.getElementById("help").classList.toggle("open"));
document.querySelectorAll(".overlay .close").forEach(b => b.addEventListener("click", closeOverlays));
load();
"""

_HELP = [("j / ↓, k / ↑", "next / previous group"), ("h / ←, l / →", "previous / next member"),
         ("x", "the selected member is not a duplicate"), ("p", "keep the selected member instead"),
         ("s", "split the group here (the selected member starts a new group)"),
         ("w", "the whole group is wrong"), ("c", "the group looks right"),
         ("v", "compare two members at full size (the two ticked, else the selected with the kept one)"),
         ("f", "in the comparison: fit to the window / actual pixels"), ("Esc", "close"), ("?", "this help")]


def render_page(token: str, nonce: str) -> str:
    """The page for one session; ``token`` goes into the script (for the X-Maya-Token header), ``nonce``
    lets the Content-Security-Policy run this one inline script and nothing else."""
    help_rows = "".join(f"<tr><td><kbd>{html.escape(k)}</kbd></td><td>{html.escape(v)}</td></tr>" for k, v in _HELP)
    token_json = json.dumps(token).replace("<", "\\u003c")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Maya review</title><style>{_CSS}</style></head>
<body>
<header><h1>Maya review</h1><span class="sub" id="title">loading…</span><span class="spacer"></span>
<span id="actions"></span>
<button id="plan-move" title="dry run first">Move duplicates of reviewed groups…</button>
<button id="plan-link" title="dry run first">Replace them by links…</button>
<button id="help-btn">Keys (?)</button></header>
<main id="groups"></main>
<div class="overlay" id="compare"><div class="bar"><strong id="cmp-title">Compare</strong><span class="spacer"></span>
<button class="close">Close (Esc)</button></div><div class="pair"></div></div>
<div class="overlay" id="plan"><div class="box"></div></div>
<div class="overlay" id="help"><div class="box"><h2>Keys</h2><table>{help_rows}</table>
<p>Decisions are saved as you make them; a second click takes one back. Only reviewed groups (with at least one
decision) are moved or linked, their files marked "not a duplicate" never.</p><button class="close">Close</button></div></div>
<div id="toast"></div>
<script type="application/json" id="maya-token">{token_json}</script>
<script nonce="{nonce}">{_SCRIPT}</script>
</body></html>
"""
