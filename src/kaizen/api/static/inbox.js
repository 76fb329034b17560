// Approver inbox: sign in with a token, list pending requests, approve or reject.
// Polls the API so decisions made elsewhere (another instance, the CLI) show up without a reload.
"use strict";

const TOKEN_KEY = "kaizen.token";
const POLL_MS = 2000;
const $ = (id) => document.getElementById(id);

let user = null;
let pollTimer = null;
let serial = 0;
let refreshSeq = 0; // only the latest refresh may render: older responses may be stale
const mine = new Set(); // ids this page is deciding or decided: not "decided elsewhere"

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, cache: "no-store", credentials: "omit",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try { data = await response.json(); } catch { data = null; }
  if (!response.ok) {
    const error = (data && data.error) || {};
    throw new ApiError(response.status, error.code || "error", error.message || `HTTP ${response.status}`);
  }
  return data;
}

function announce(text) {
  // Clear first so the same message twice is still read out.
  const region = $("announcer");
  region.textContent = "";
  window.setTimeout(() => { region.textContent = text; }, 50);
}

function showError(text) {
  $("error").textContent = text;
  $("error").hidden = !text;
}

function relative(date) {
  const ms = date.getTime() - Date.now();
  const minutes = Math.round(Math.abs(ms) / 60000);
  if (minutes < 1) return ms <= 0 ? "just now" : "in under a minute";
  const span = minutes < 120 ? `${minutes} min` : `${Math.round(minutes / 60)} h`;
  return ms < 0 ? `${span} ago` : `in ${span}`;
}

function fill(item, approval) {
  const q = (sel) => item.querySelector(sel);
  q(".agent").textContent = approval.external_agent_id;
  q(".requester").textContent = approval.requested_by;
  q(".reason").textContent = approval.approval_reason || "—";
  q(".metadata").textContent = JSON.stringify(approval.request_metadata || {}, null, 2);
  q(".age").textContent = relative(new Date(approval.created_at));
  q(".request-id").textContent = approval.id;
  const deadline = q(".deadline");
  if (approval.deadline_at) {
    const when = new Date(approval.deadline_at);
    deadline.textContent = `${when.toLocaleString()} (${relative(when)})`;
    deadline.classList.toggle("overdue", when.getTime() <= Date.now());
  } else {
    deadline.textContent = "none";
  }
}

function build(approval) {
  const item = $("request-template").content.firstElementChild.cloneNode(true);
  const n = ++serial;
  item.dataset.id = approval.id;
  const heading = item.querySelector(".agent");
  heading.id = `req-${n}-title`;
  item.querySelector("article").setAttribute("aria-labelledby", heading.id);
  const reason = item.querySelector(".reject-reason");
  reason.id = `req-${n}-reason`;
  item.querySelector(".reject-label").htmlFor = reason.id;
  const form = item.querySelector(".reject-form");
  form.id = `req-${n}-reject`;
  item.querySelector(".reject").setAttribute("aria-controls", form.id);
  const label = `request from ${approval.requested_by} for ${approval.external_agent_id}`;
  item.querySelector(".approve").setAttribute("aria-label", `Approve ${label}`);
  item.querySelector(".reject").setAttribute("aria-label", `Reject ${label}`);
  wire(item, approval.id);
  return item;
}

function wire(item, id) {
  const form = item.querySelector(".reject-form");
  const rejectButton = item.querySelector(".reject");
  item.querySelector(".approve").addEventListener("click", () => decide(item, id, "approve"));
  rejectButton.addEventListener("click", () => {
    form.hidden = false;
    rejectButton.setAttribute("aria-expanded", "true");
    form.querySelector("textarea").focus();
  });
  const cancel = () => {
    form.hidden = true;
    rejectButton.setAttribute("aria-expanded", "false");
    rejectButton.focus();
  };
  item.querySelector(".cancel-reject").addEventListener("click", cancel);
  form.addEventListener("keydown", (event) => { if (event.key === "Escape") cancel(); });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const reason = form.querySelector("textarea").value.trim();
    if (!reason) {
      showError("Please give a reason for the rejection.");
      form.querySelector("textarea").focus();
      return;
    }
    decide(item, id, "reject", { reason });
  });
}

async function decide(item, id, action, body) {
  const buttons = item.querySelectorAll("button");
  buttons.forEach((b) => { b.disabled = true; });
  showError("");
  mine.add(id);
  try {
    await api(`/api/approvals/${encodeURIComponent(id)}/${action}`, { method: "POST", body: body || {} });
    const agent = item.querySelector(".agent").textContent;
    removeItem(item);
    announce(`${action === "approve" ? "Approved" : "Rejected"} the request for ${agent}.`);
  } catch (error) {
    buttons.forEach((b) => { b.disabled = false; });
    if (error.status === 401) return signOut("Your token is no longer accepted; please sign in again.");
    if (error.status === 409 || error.status === 404) removeItem(item);
    else mine.delete(id);
    showError(error.message);
  }
  refresh();
}

function removeItem(item) {
  // Keep keyboard users in place: focus moves to the next request, or the list heading.
  const hadFocus = item.contains(document.activeElement);
  const next = item.nextElementSibling || item.previousElementSibling;
  item.remove();
  if (hadFocus) (next ? next.querySelector(".agent") : $("inbox-title")).focus();
  updateCount();
}

function updateCount() {
  const count = $("requests").children.length;
  $("count").textContent = `(${count})`;
  $("empty").hidden = count > 0;
}

function render(approvals) {
  const list = $("requests");
  const existing = new Map([...list.children].map((li) => [li.dataset.id, li]));
  const wanted = new Set(approvals.map((a) => a.id));
  const gone = [];
  for (const [id, li] of existing) {
    if (!wanted.has(id)) {
      if (!mine.has(id)) gone.push(li.querySelector(".agent").textContent);
      removeItem(li);
    }
  }
  // Reuse existing items so a half-typed rejection reason and focus survive each poll.
  let before = list.firstElementChild;
  for (const approval of approvals) {
    const item = existing.get(approval.id) || build(approval);
    fill(item, approval);
    if (item !== before) list.insertBefore(item, before);
    else before = before.nextElementSibling;
  }
  updateCount();
  if (gone.length) announce(`Decided elsewhere: ${gone.join(", ")}.`);
}

async function refresh() {
  window.clearTimeout(pollTimer);
  if (!user) return;
  const seq = ++refreshSeq;
  try {
    const query = new URLSearchParams({ status: "pending", approver: user, limit: "500" });
    const page = await api(`/api/approvals?${query}`);
    if (seq !== refreshSeq) return; // superseded (a decision, sign-out or newer poll)
    render(page.items);
    if ($("error").dataset.kind === "poll") { showError(""); delete $("error").dataset.kind; }
  } catch (error) {
    if (seq !== refreshSeq) return;
    if (error.status === 401) return signOut("Your token is no longer accepted; please sign in again.");
    showError(`Could not refresh the list: ${error.message}`);
    $("error").dataset.kind = "poll";
  }
  if (user) pollTimer = window.setTimeout(refresh, POLL_MS);
}

async function signIn(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
  try {
    user = (await api("/api/me")).user;
  } catch (error) {
    sessionStorage.removeItem(TOKEN_KEY);
    user = null;
    showError(error.status === 401 ? "That token was not accepted." : `Sign-in failed: ${error.message}`);
    $("token").focus();
    return;
  }
  showError("");
  $("user-name").textContent = user;
  $("whoami").hidden = false;
  $("sign-in").hidden = true;
  $("inbox").hidden = false;
  $("inbox-title").focus();
  announce(`Signed in as ${user}.`);
  await refresh();
}

function signOut(message) {
  window.clearTimeout(pollTimer);
  refreshSeq++;
  sessionStorage.removeItem(TOKEN_KEY);
  user = null;
  mine.clear();
  $("requests").replaceChildren();
  $("whoami").hidden = true;
  $("inbox").hidden = true;
  $("sign-in").hidden = false;
  $("token").value = "";
  showError(message || "");
  $("token").focus();
  if (!message) announce("Signed out.");
}

document.addEventListener("DOMContentLoaded", () => {
  $("sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token").value.trim();
    $("token").value = "";
    if (!token) {
      showError("Please enter your access token.");
      $("token").focus();
      return;
    }
    signIn(token);
  });
  $("sign-out").addEventListener("click", () => signOut());
  document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) signIn(saved);
  else $("token").focus();
});
