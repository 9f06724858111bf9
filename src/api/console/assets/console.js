// The operator console's only script: local times, confirmations, sale
// windows typed in local time, and live numbers over server-sent events.
"use strict";

function localTimes(root) {
  for (const el of root.querySelectorAll("time[datetime]")) {
    const at = new Date(el.getAttribute("datetime"));
    if (!isNaN(at)) {
      el.textContent = at.toLocaleString();
      el.title = el.getAttribute("datetime");
    }
  }
}

// `YYYY-MM-DDTHH:MM` in the viewer's zone, as datetime-local inputs take.
function localInputValue(iso) {
  const at = new Date(iso);
  if (isNaN(at)) return "";
  const pad = (n) => String(n).padStart(2, "0");
  return `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())}T${pad(at.getHours())}:${pad(at.getMinutes())}`;
}

function windowInputs() {
  for (const input of document.querySelectorAll("input[type=datetime-local][data-for]")) {
    if (input.dataset.utc) input.value = localInputValue(input.dataset.utc);
  }
  for (const form of document.querySelectorAll("form")) {
    form.addEventListener("submit", (event) => {
      const message = form.dataset.confirm;
      if (message && !window.confirm(message)) {
        event.preventDefault();
        return;
      }
      for (const input of form.querySelectorAll("input[type=datetime-local][data-for]")) {
        const target = form.querySelector(`input[type=hidden][name="${input.dataset.for}"]`);
        if (!target) continue;
        target.value = input.value ? new Date(input.value).toISOString() : "";
      }
    });
  }
}

function show(value, kind) {
  if (value === null || value === undefined) return "—";
  if (kind === "rate") return Number(value).toLocaleString(undefined, { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  if (kind === "ms") return Math.round(Number(value)).toLocaleString();
  if (kind === "bool") return value ? "yes" : "no";
  if (typeof value === "number") return value.toLocaleString();
  return String(value);
}

function fill(row, values) {
  for (const cell of row.querySelectorAll("[data-field]")) {
    const field = cell.dataset.field;
    if (!(field in values)) continue;
    const text = show(values[field], cell.dataset.kind);
    if (cell.textContent !== text) cell.textContent = text;
  }
}

function applyOverview(overview) {
  const unknown = [];
  for (const product of overview.products || []) {
    const row = document.querySelector(`tr[data-product-id="${product.id}"]`);
    if (row) fill(row, product); else unknown.push(product.id);
  }
  for (const partition of overview.partitions || []) {
    const row = document.querySelector(`tr[data-partition="${partition.partition}"]`);
    if (row) fill(row, partition);
  }
  for (const el of document.querySelectorAll("[data-overview]")) {
    const value = overview[el.dataset.overview];
    if (el.dataset.overview === "queued") {
      const total = (overview.partitions || []).reduce((sum, p) => sum + (p.messages || 0), 0);
      el.textContent = total.toLocaleString();
    } else {
      el.textContent = show(value, el.dataset.kind);
    }
  }
  const fresh = document.getElementById("live-new");
  if (fresh) fresh.hidden = unknown.length === 0;
}

function live() {
  const source = document.querySelector("[data-live]");
  if (!source || !window.EventSource) return;
  const status = document.getElementById("live-status");
  const events = new EventSource(source.dataset.live);
  events.addEventListener("overview", (event) => {
    applyOverview(JSON.parse(event.data));
    if (status) {
      status.className = "live on";
      status.textContent = `live · ${new Date().toLocaleTimeString()}`;
    }
  });
  events.addEventListener("error", () => {
    if (status) {
      status.className = "live off";
      status.textContent = "reconnecting…";
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  localTimes(document);
  windowInputs();
  live();
});
