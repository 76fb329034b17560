// Approver inbox: sign in with a token; then either the inbox (tabs "Pending", polled so
// decisions made elsewhere show up without a reload, and "Decided", the user's own
// decisions) or, at /approvals/<id>, the page of one request (the links sent to approvers).
// Opening a page never changes anything: only a confirmed Approve/Reject sends a POST.
// A vote that does not yet decide (a quorum of several) leaves the request pending: its
// card stays, showing the votes and "You voted".
import {
  $, EXPIRED, TOKEN_KEY, announce, api, apiPath, clearError, createCard, decisionVerb,
  fillCard, notify, openStep, pagePath, problemText, recordedText, setFieldError, setViewer,
  showError, showStatus,
} from "./common.js";

const POLL_MS = 2000;
const DECIDED_PAGE = 25;
const TABS = ["pending", "decided"];

let user = null;
let route = null; // what the URL asks for: { view: "inbox", tab } or { view: "request", id, action }
let pollTimer = null;
let refreshSeq = 0; // only the latest refresh may render: older responses may be stale
let decidedSeq = 0;
let decidedNext = null; // offset of the next page of decisions, null when none
const mine = new Set(); // ids this page is deciding or decided: not "decided elsewhere"

function parseRoute() {
  const params = new URLSearchParams(location.search);
  const prefix = "/approvals/";
  if (!location.pathname.startsWith(prefix)) {
    return { view: "inbox", tab: params.get("tab") === "decided" ? "decided" : "pending" };
  }
  let id = null;
  try {
    id = decodeURIComponent(location.pathname.slice(prefix.length)) || null;
  } catch {
    id = null; // a malformed %-escape: the link is damaged
  }
  const action = params.get("action");
  return { view: "request", id, action: ["approve", "reject"].includes(action) ? action : null };
}

const label = (a) => `the request from ${a.requested_by} for ${a.external_agent_id}`;

// -- the pending list -------------------------------------------------------

function listHooks(id, item) {
  return {
    started: () => mine.add(id),
    decided: (approval, action) => {
      const recorded = recordedText(approval);
      if (recorded) {
        mine.delete(id); // still pending: whoever decides it next, it is news here
        fillCard(item.firstElementChild, approval);
        item.querySelector(".agent").focus(); // its buttons are gone
        notify(`${recorded} (${label(approval)}).`);
        return;
      }
      removeItem(item);
      notify(`${decisionVerb(action)} ${label(approval)}.`);
      refreshDecided();
      refresh();
    },
    failed: (error) => {
      if (error.status === 401) return signOut(EXPIRED);
      if (error.code === "already_voted") {
        showError(problemText(error));
        mine.delete(id);
      } else if (error.status === 404 || error.status === 409) {
        showError(problemText(error));
        removeItem(item);
      } else {
        mine.delete(id);
      }
      refresh();
    },
  };
}

function build(approval) {
  const item = document.createElement("li");
  item.dataset.id = approval.id;
  item.append(createCard(approval, listHooks(approval.id, item)));
  return item;
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
  // Reuse existing items so a half-typed rejection reason, an open step and focus survive each poll.
  let before = list.firstElementChild;
  for (const approval of approvals) {
    const item = existing.get(approval.id) || build(approval);
    fillCard(item.firstElementChild, approval);
    if (item !== before) list.insertBefore(item, before);
    else before = before.nextElementSibling;
  }
  updateCount();
  if (gone.length) announce(`Decided elsewhere: ${gone.join(", ")}.`);
}

async function refresh() {
  window.clearTimeout(pollTimer);
  if (!user || route.view !== "inbox") return;
  const seq = ++refreshSeq;
  try {
    // Routed to me, or to someone I stand in for as a delegate.
    const query = new URLSearchParams({ status: "pending", voter: user, limit: "500" });
    const page = await api(`/api/approvals?${query}`);
    if (seq !== refreshSeq) return; // superseded (a decision, sign-out or newer poll)
    render(page.items);
    clearError("poll");
  } catch (error) {
    if (seq !== refreshSeq) return;
    if (error.status === 401) return signOut(EXPIRED);
    showError(`Could not refresh the list: ${error.message}`, "poll");
  }
  if (user) pollTimer = window.setTimeout(refresh, POLL_MS);
}

// -- the decided tab --------------------------------------------------------

function decidedRow(approval) {
  const row = $("decided-template").content.firstElementChild.cloneNode(true);
  const q = (sel) => row.querySelector(sel);
  row.dataset.id = approval.id;
  q(".decided-link").textContent = approval.external_agent_id;
  q(".decided-link").href = pagePath(approval.id);
  q(".decided-requester").textContent = approval.requested_by;
  showStatus(q(".status"), approval.status);
  if (approval.approved_at) {
    q(".decided-when").dateTime = approval.approved_at;
    q(".decided-when").textContent = new Date(approval.approved_at).toLocaleString();
  }
  q(".decided-reason").textContent = approval.rejection_reason || "—";
  return row;
}

async function refreshDecided(more = false) {
  if (!user) return;
  const seq = ++decidedSeq;
  const offset = more ? decidedNext : 0;
  const query = new URLSearchParams({ decided_by: user, limit: String(DECIDED_PAGE), offset: String(offset) });
  $("panel-decided").setAttribute("aria-busy", "true");
  try {
    const page = await api(`/api/approvals?${query}`);
    if (seq !== decidedSeq) return;
    const body = $("decided");
    const rows = page.items.map(decidedRow);
    if (more) body.append(...rows);
    else body.replaceChildren(...rows);
    if (more && rows.length) rows[0].querySelector("a").focus();
    decidedNext = page.next_offset;
    $("decided-more").hidden = decidedNext === null;
    $("decided-table").hidden = body.children.length === 0;
    $("decided-empty").hidden = body.children.length > 0;
    clearError("decided");
  } catch (error) {
    if (seq !== decidedSeq) return;
    if (error.status === 401) return signOut(EXPIRED);
    showError(`Could not load your decisions: ${error.message}`, "decided");
  } finally {
    if (seq === decidedSeq) $("panel-decided").removeAttribute("aria-busy");
  }
}

// -- tabs (WAI-ARIA tabs pattern, automatic activation) ----------------------

function selectTab(name, { focus = false } = {}) {
  for (const tab of TABS) {
    const selected = tab === name;
    $(`tab-${tab}`).setAttribute("aria-selected", String(selected));
    $(`tab-${tab}`).tabIndex = selected ? 0 : -1;
    $(`panel-${tab}`).hidden = !selected;
  }
  if (focus) $(`tab-${name}`).focus();
  route = { view: "inbox", tab: name };
  history.replaceState(null, "", name === "decided" ? "/?tab=decided" : "/");
  if (name === "decided") refreshDecided();
}

function onTabKey(event) {
  const index = TABS.indexOf(event.currentTarget.id.slice("tab-".length));
  const moves = { ArrowRight: index + 1, ArrowLeft: index - 1, Home: 0, End: TABS.length - 1 };
  if (!(event.key in moves)) return;
  event.preventDefault();
  selectTab(TABS[(moves[event.key] + TABS.length) % TABS.length], { focus: true });
}

function showInbox(tab) {
  $("request-page").hidden = true;
  $("inbox").hidden = false;
  document.title = "Kaizen approvals inbox";
  selectTab(tab);
  $(tab === "decided" ? "decided-title" : "inbox-title").focus();
  refresh();
}

// -- the page of one request (/approvals/<id>?action=approve|reject) --------

function pageHooks(id, getCard) {
  return {
    stepChanged: (action) => history.replaceState(null, "", pagePath(id, action)),
    decided: (approval, action) => {
      fillCard(getCard(), approval);
      const recorded = recordedText(approval);
      notify(recorded ? `${recorded}.` : `${decisionVerb(action)} ${label(approval)}.`);
      history.replaceState(null, "", pagePath(id));
      getCard().querySelector(".agent").focus();
    },
    failed: (error) => {
      if (error.status === 401) signOut(EXPIRED);
      else if (error.status === 404) showMissing(problemText(error));
      else if (error.status === 409) {
        showError(problemText(error));
        open({ view: "request", id, action: null }); // reload it to show the decision
      }
    },
  };
}

function showMissing(text) {
  document.title = "Request not found — Kaizen approvals";
  $("request-slot").replaceChildren();
  $("request-note").hidden = true;
  $("request-missing").textContent = text;
  $("request-missing").hidden = false;
  $("request-missing").focus();
}

async function showRequestPage(target) {
  $("inbox").hidden = true;
  $("request-page").hidden = false;
  $("request-missing").hidden = true;
  $("request-note").hidden = true;
  if (target.id === null) return showMissing("This link does not name a request; it may be damaged.");
  $("request-loading").hidden = false;
  let approval = null;
  let failure = null;
  try {
    approval = await api(apiPath(target.id));
  } catch (error) {
    failure = error;
  }
  $("request-loading").hidden = true;
  if (!user || route !== target) return; // signed out (or sent elsewhere) meanwhile
  if (failure && failure.status === 401) return signOut(EXPIRED);
  if (failure) {
    const why = failure.status === 404 ? problemText(failure) : `Could not load the request: ${failure.message}`;
    return showMissing(why);
  }
  const card = createCard(approval, pageHooks(target.id, () => card));
  $("request-slot").replaceChildren(card);
  document.title = `Request for ${approval.external_agent_id} — Kaizen approvals`;
  const pending = approval.status === "pending";
  $("request-note").hidden = pending;
  if (pending && target.action) openStep(card, target.action, target.action === "reject");
  else history.replaceState(null, "", pagePath(target.id));
  if (!(pending && target.action === "reject")) card.querySelector(".agent").focus();
}

// -- signing in and out -----------------------------------------------------

function open(target) {
  route = target;
  if (target.view === "request") return showRequestPage(target);
  return showInbox(target.tab);
}

async function signIn(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
  try {
    user = (await api("/api/me")).user;
  } catch (error) {
    sessionStorage.removeItem(TOKEN_KEY);
    user = null;
    if (error.status === 401) setFieldError($("token"), $("token-error"), "That token was not accepted.");
    else showError(`Sign-in failed: ${error.message}`);
    $("token").focus();
    return;
  }
  setFieldError($("token"), $("token-error"), "");
  showError("");
  setViewer(user);
  $("user-name").textContent = user;
  $("whoami").hidden = false;
  $("sign-in").hidden = true;
  announce(`Signed in as ${user}.`);
  await open(parseRoute());
}

function signOut(message) {
  window.clearTimeout(pollTimer);
  refreshSeq++;
  decidedSeq++;
  sessionStorage.removeItem(TOKEN_KEY);
  user = null;
  setViewer(null);
  mine.clear();
  $("requests").replaceChildren();
  $("decided").replaceChildren();
  $("request-slot").replaceChildren();
  $("whoami").hidden = true;
  $("inbox").hidden = true;
  $("request-page").hidden = true;
  showSignIn();
  setFieldError($("token"), $("token-error"), message || "");
  showError("");
  if (!message) announce("Signed out.");
}

function showSignIn() {
  $("sign-in").hidden = false;
  $("sign-in-context").hidden = parseRoute().view !== "request";
  $("token").value = "";
  $("token").focus();
}

document.addEventListener("DOMContentLoaded", () => {
  $("sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token").value.trim();
    $("token").value = "";
    if (!token) {
      setFieldError($("token"), $("token-error"), "Please enter your access token.");
      $("token").focus();
      return;
    }
    signIn(token);
  });
  $("token").addEventListener("input", () => setFieldError($("token"), $("token-error"), ""));
  $("sign-out").addEventListener("click", () => signOut());
  for (const tab of TABS) {
    $(`tab-${tab}`).addEventListener("click", () => selectTab(tab));
    $(`tab-${tab}`).addEventListener("keydown", onTabKey);
  }
  $("decided-more").addEventListener("click", () => refreshDecided(true));
  document.addEventListener("visibilitychange", () => {
    if (document.hidden || !user || route.view !== "inbox") return;
    refresh();
    if (route.tab === "decided") refreshDecided();
  });
  route = parseRoute();
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) signIn(saved);
  else showSignIn();
});
