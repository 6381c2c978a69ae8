// sidetask playground: one /analyze call, answers drawn from the JSON. No framework, no CDN.
"use strict";

const $ = (id) => document.getElementById(id);
let tasksInfo = null; // GET /tasks
const KEY = "sidetask-api-key"; // sessionStorage: this tab only, gone when it closes

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = sessionStorage.getItem(KEY);
  if (key) h.Authorization = "Bearer " + key;
  return h;
}

async function api(path, body) {
  const init = body === undefined ? { headers: headers() }
    : { method: "POST", headers: headers(), body: JSON.stringify(body) };
  const res = await fetch(path, init);
  const data = await res.json().catch(() => ({}));
  if (res.status === 401) $("keybox").hidden = false;
  if (!res.ok) {
    const err = (data && data.error) || {};
    throw new Error(`${res.status} ${err.code || ""}: ${err.message || res.statusText}`);
  }
  return data;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "style") node.style.cssText = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function headByName(name) {
  return tasksInfo.heads.find((h) => h.name === name);
}

// Entities carry Python str offsets (code points); Array.from splits by code point too.
function highlighted(text, entities) {
  const chars = Array.from(text);
  const out = el("p", { class: "marked" });
  let at = 0;
  for (const e of [...entities].sort((a, b) => a.start - b.start)) {
    if (e.start < at) continue;
    out.append(chars.slice(at, e.start).join(""));
    const mark = el("mark", {
      "data-label": e.label, "data-start": e.start, "data-end": e.end,
      title: `${e.label} ${e.score.toFixed(3)}`,
    }, chars.slice(e.start, e.end).join(""));
    out.append(mark);
    at = e.end;
  }
  out.append(chars.slice(at).join(""));
  return out;
}

function scoreBars(answer) {
  const box = el("div", { class: "bars" });
  // a class answer marks its label; a multi-label answer every label over its threshold
  const marked = new Set(Array.isArray(answer.labels) ? answer.labels.map((x) => x.label) : [answer.label]);
  for (const [label, p] of Object.entries(answer.scores)) {
    const pct = (100 * p).toFixed(1);
    box.append(el("div", { class: "bar" + (marked.has(label) ? " top" : ""), "data-label": label },
      el("span", { class: "name" }, label),
      el("span", { class: "track" }, el("span", { class: "fill", style: `width:${pct}%` })),
      el("span", { class: "value" }, p.toFixed(3))));
  }
  return box;
}

function card(title, kind, body) {
  return el("article", { class: "card", "data-task": title }, el("h3", {}, title, el("small", {}, kind)), body);
}

function render(text, result) {
  const out = $("results");
  out.replaceChildren();
  for (const [task, answer] of Object.entries(result.results[0])) {
    const head = headByName(task);
    if (task === "embedding") {
      const norm = Math.sqrt(answer.reduce((s, x) => s + x * x, 0));
      out.append(card(task, "main task", el("p", { class: "embedding" },
        `${answer.length} numbers, L2 norm ${norm.toFixed(4)}: [${answer.slice(0, 4).map((x) => x.toFixed(3)).join(", ")}, …]`)));
    } else if (task === "generate") {
      out.append(card(task, "main task", el("p", {}, answer)));
    } else if (Array.isArray(answer)) {
      out.append(card(task, head ? head.kind : "", highlighted(text, answer)));
    } else if (answer && answer.scores) {
      out.append(card(task, head ? head.kind : "", scoreBars(answer)));
    } else {
      out.append(card(task, "", el("pre", {}, JSON.stringify(answer, null, 1))));
    }
  }
  out.append(el("p", { class: "usage" },
    `${result.usage.tokens} tokens, ${result.usage.layers_run} of ${tasksInfo.num_layers} layers run`));
}

function weightChart(head) {
  const w = head.layer_weights;
  const max = Math.max(...w, 1e-9);
  const cols = el("div", { class: "cols" });
  w.forEach((x, i) => cols.append(el("span", {
    class: "col" + (x > 0 ? "" : " off"), title: `Z${i}: ${x.toFixed(3)}`, "data-layer": i,
    style: `height:${(100 * x / max).toFixed(1)}%`,
  })));
  const axis = el("div", { class: "axis" }, el("span", {}, "Z0"), el("span", {}, `Z${w.length - 1}`));
  return el("figure", { class: "chart", "data-head": head.name }, el("figcaption", {}, head.name), cols, axis);
}

function drawTasks(selected) {
  const box = $("tasks");
  box.querySelectorAll("label").forEach((n) => n.remove());
  const names = [...tasksInfo.heads.map((h) => h.name), tasksInfo.main_task];
  for (const name of names) {
    const checked = selected ? selected.includes(name) : true;
    const input = el("input", { type: "checkbox", name: "task", value: name });
    input.checked = checked;
    box.append(el("label", {}, input, " " + name));
  }
  $("charts").replaceChildren(...tasksInfo.heads.map(weightChart));
  $("backbone").textContent = `${tasksInfo.backbone} · ${tasksInfo.num_layers} layers · main task: ${tasksInfo.main_task}`;
}

async function loadTasks(selected) {
  try {
    tasksInfo = await api("/tasks");
    drawTasks(selected);
    return true;
  } catch (e) {
    $("status").textContent = e.message;
    return false;
  }
}

async function run(event) {
  if (event) event.preventDefault();
  if (!tasksInfo && !(await loadTasks(null))) return;
  const text = $("text").value;
  const tasks = [...document.querySelectorAll("input[name=task]:checked")].map((n) => n.value);
  if (!tasks.length) { $("status").textContent = "choose at least one task"; return; }
  const params = new URLSearchParams({ text, tasks: tasks.join(",") });
  history.replaceState(null, "", "?" + params.toString()); // the link reproduces this result
  $("status").textContent = "running…";
  document.body.dataset.state = "running";
  try {
    const started = performance.now();
    const result = await api("/analyze", { texts: [text], tasks });
    render(text, result);
    $("status").textContent = `${(performance.now() - started).toFixed(0)} ms`;
    document.body.dataset.state = "done";
  } catch (e) {
    $("status").textContent = e.message;
    document.body.dataset.state = "error";
  }
}

async function start() {
  const query = new URLSearchParams(location.search);
  if (sessionStorage.getItem(KEY)) $("key").value = sessionStorage.getItem(KEY);
  $("key").addEventListener("change", async () => {
    sessionStorage.setItem(KEY, $("key").value.trim());
    if (!tasksInfo) await loadTasks(null);
  });
  $("form").addEventListener("submit", run);
  const selected = query.get("tasks") ? query.get("tasks").split(",").filter(Boolean) : null;
  if (query.has("text")) $("text").value = query.get("text");
  const ok = await loadTasks(selected);
  document.body.dataset.state = ok ? "ready" : "error";
  if (ok && query.has("text")) await run(null);
}

start();
