// What the inbox's views share: the API client, feedback (alert, success notice, field
// errors) and the request card with its two-step approve (with an optional comment and
// edited metadata) and reject.
import {
  leadingVersion, parseMetadata, progressText, sameVersion, showDiff, textProblem, voteItem,
} from "./votes.js";

export const $ = (id) => document.getElementById(id);
export const TOKEN_KEY = "kaizen.token";
export const EXPIRED = "Your token is no longer accepted; please sign in again.";
const NOTICE_MS = 8000;

let viewer = null; // the signed-in user: whose vote a card looks for

/** Tell the cards who is signed in (null: nobody). */
export function setViewer(name) {
  viewer = name;
}

const votedIn = (approval) =>
  viewer !== null && (approval.votes || []).some((v) => v.approver_id === viewer);

/** The message after a vote that left `approval` pending, without a full stop (null: it decided it). */
export const recordedText = (approval) =>
  approval.status === "pending" ? `Your vote is recorded: ${progressText(approval)}` : null;

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Call the API with the tab's token; resolve to the JSON body or throw an ApiError. */
export async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method, headers, cache: "no-store", credentials: "omit",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "network", "The server could not be reached; check the connection and try again.");
  }
  let data = null;
  try { data = await response.json(); } catch { data = null; }
  if (!response.ok) {
    const error = (data && data.error) || {};
    throw new ApiError(response.status, error.code || "error", error.message || `HTTP ${response.status}`);
  }
  return data;
}

// Ids may hold "/", "%", spaces or any character: always one encoded path segment.
export const apiPath = (id, action) =>
  `/api/approvals/${encodeURIComponent(id)}${action ? `/${action}` : ""}`;
export const pagePath = (id, action) =>
  `/approvals/${encodeURIComponent(id)}${action ? `?action=${action}` : ""}`;

// What a refused decision means for the person who tried it.
const PROBLEMS = {
  own_request: "You made this request; someone else must decide it.",
  not_an_approver: "You are not one of the approvers of this request.",
  already_decided: "This request has already been decided.",
  already_voted: "Your vote on this request is already recorded.",
  not_found: "This request does not exist, or you are not allowed to see it.",
};
export const problemText = (error) => PROBLEMS[error.code] || error.message;

// -- feedback ---------------------------------------------------------------

/** Read `text` out to screen readers only (the page shows it some other way). */
export function announce(text) {
  // Clear first so the same message twice is still read out.
  const region = $("announcer");
  region.textContent = "";
  window.setTimeout(() => { region.textContent = text; }, 50);
}

let noticeTimer = null;

/** A success message, visible (and read out) for a few seconds. */
export function notify(text) {
  const notice = $("notice");
  window.clearTimeout(noticeTimer);
  notice.textContent = text;
  noticeTimer = window.setTimeout(() => { notice.textContent = ""; }, NOTICE_MS);
}

/** The global alert; `kind` tags it so that only the same source clears it later. */
export function showError(text, kind) {
  const box = $("error");
  box.textContent = text || "";
  box.hidden = !text;
  if (text && kind) box.dataset.kind = kind;
  else delete box.dataset.kind;
}

export function clearError(kind) {
  if ($("error").dataset.kind === kind) showError("");
}

/** Show (or with no text, clear) the error under `field`, in `message`. */
export function setFieldError(field, message, text) {
  message.textContent = text || "";
  message.hidden = !text;
  if (text) {
    field.setAttribute("aria-invalid", "true");
    field.setAttribute("aria-describedby", message.id);
  } else {
    field.removeAttribute("aria-invalid");
    field.removeAttribute("aria-describedby");
  }
}

export function relative(date) {
  const ms = date.getTime() - Date.now();
  const minutes = Math.round(Math.abs(ms) / 60000);
  if (minutes < 1) return ms <= 0 ? "just now" : "in under a minute";
  const span = minutes < 120 ? `${minutes} min` : `${Math.round(minutes / 60)} h`;
  return ms < 0 ? `${span} ago` : `in ${span}`;
}

export const STATUS_LABELS = {
  pending: "Pending", approved: "Approved", rejected: "Rejected", timeout: "Timed out",
};

/** Show `status` in `badge` (a styled word, never colour alone). */
export function showStatus(badge, status) {
  badge.textContent = STATUS_LABELS[status] || status;
  badge.className = `status status-${STATUS_LABELS[status] ? status : "other"}`;
}

export const decisionVerb = (action) => (action === "approve" ? "Approved" : "Rejected");

// -- the request card -------------------------------------------------------

let serial = 0;
const hooksOf = new WeakMap(); // card -> the hooks of the view showing it
const shownOf = new WeakMap(); // card -> the approval it shows (the latest filled in)

/**
 * A card showing `approval`, with Approve…/Reject… each opening a confirm step.
 * The view reacts through `hooks`: `decided(approval, action)` after a decision,
 * `failed(error)` after a refused one (the card has shown why, except for 401, 404 and
 * 409: those are the view's to show), optional `started()` and `stepChanged(action | null)`.
 */
export function createCard(approval, hooks) {
  const card = $("request-template").content.firstElementChild.cloneNode(true);
  const q = (sel) => card.querySelector(sel);
  const n = ++serial;
  card.dataset.id = approval.id;
  hooksOf.set(card, hooks);
  const ids = {
    ".agent": "title", ".reject-reason": "reason", ".reject-error": "reason-error",
    ".reject-form": "reject", ".approve-confirm": "approve", ".step-question": "question",
    ".approve-comment": "comment", ".comment-error": "comment-error",
    ".metadata-edit": "metadata", ".metadata-error": "metadata-error",
  };
  for (const [sel, name] of Object.entries(ids)) q(sel).id = `req-${n}-${name}`;
  card.setAttribute("aria-labelledby", q(".agent").id);
  q(".reject-label").htmlFor = q(".reject-reason").id;
  q(".comment-label").htmlFor = q(".approve-comment").id;
  q(".metadata-label").htmlFor = q(".metadata-edit").id;
  q(".approve-confirm").setAttribute("aria-labelledby", q(".step-question").id);
  q(".approve").setAttribute("aria-controls", q(".approve-confirm").id);
  q(".reject").setAttribute("aria-controls", q(".reject-form").id);
  const label = `request from ${approval.requested_by} for ${approval.external_agent_id}`;
  q(".approve").setAttribute("aria-label", `Approve ${label}`);
  q(".reject").setAttribute("aria-label", `Reject ${label}`);
  fillCard(card, approval);
  wire(card, approval.id);
  return card;
}

/** Update the card's text from `approval` (open steps and typed text are kept). */
export function fillCard(card, approval) {
  const q = (sel) => card.querySelector(sel);
  shownOf.set(card, approval);
  q(".agent").textContent = approval.external_agent_id;
  q(".requester").textContent = approval.requested_by;
  q(".reason").textContent = approval.approval_reason || "—";
  q(".metadata").textContent = JSON.stringify(approval.request_metadata || {}, null, 2);
  q(".age").textContent = relative(new Date(approval.created_at));
  const link = q(".request-link");
  link.textContent = approval.id;
  link.href = pagePath(approval.id);
  showStatus(q(".status"), approval.status);
  const pending = approval.status === "pending";
  const deadline = q(".deadline");
  if (approval.deadline_at) {
    const when = new Date(approval.deadline_at);
    deadline.textContent = pending ? `${when.toLocaleString()} (${relative(when)})` : when.toLocaleString();
    deadline.classList.toggle("overdue", pending && when.getTime() <= Date.now());
  } else {
    deadline.textContent = "none";
  }
  card.querySelectorAll(".decided-row").forEach((row) => { row.hidden = pending; });
  q(".decided-by").textContent = approval.approved_by || "nobody (no decision before the deadline)";
  q(".decided-at").textContent = approval.approved_at ? new Date(approval.approved_at).toLocaleString() : "—";
  q(".rejection-row").hidden = !approval.rejection_reason;
  q(".rejection-reason").textContent = approval.rejection_reason || "";
  fillVotes(card, approval);
  const voted = votedIn(approval);
  const open = pending && !voted;
  q(".voted-note").hidden = !(pending && voted);
  q(".voted-note").textContent = `You voted: ${progressText(approval)} so far; the request waits for more.`;
  q(".actions").hidden = !open;
  if (!open) closeSteps(card, false);
}

function fillVotes(card, approval) {
  const q = (sel) => card.querySelector(sel);
  const votes = approval.votes || [];
  q(".progress").textContent = progressText(approval);
  q(".votes-row").hidden = votes.length === 0;
  q(".votes").replaceChildren(...votes.map((v) => voteItem(v, approval.request_metadata || {})));
  const escalated = (approval.escalations || 0) > 0;
  q(".escalated-note").hidden = !escalated;
  const added = (approval.escalate_to || []).join(", ");
  q(".escalated-text").textContent =
    `No decision came before the first deadline; the request went to ${added || "more approvers"} too.`;
  const edited = approval.approved_metadata;
  q(".approved-metadata-row").hidden = !edited;
  if (edited) showDiff(q(".approved-diff"), approval.request_metadata || {}, edited);
  const quorum = approval.progress ? approval.progress.quorum : 1;
  q(".step-question").textContent = quorum > 1
    ? `Vote to approve this request (${progressText(approval)} so far)? Your vote cannot be undone.`
    : "Approve this request? This cannot be undone.";
}

/** Open the confirm step of `action` ("approve" or "reject"); focus it unless told not to. */
export function openStep(card, action, focus = true) {
  const q = (sel) => card.querySelector(sel);
  const approving = action === "approve";
  q(".approve-confirm").hidden = !approving;
  q(".reject-form").hidden = approving;
  q(".approve").setAttribute("aria-expanded", String(approving));
  q(".reject").setAttribute("aria-expanded", String(!approving));
  if (approving) prefillMetadata(card);
  if (focus) q(approving ? ".confirm-approve" : ".reject-reason").focus();
  hooksOf.get(card).stepChanged?.(action);
}

// The editor starts from the version with the most approvals, so that a second approver
// who edits nothing adds to the first's; what the approver typed is never replaced.
function prefillMetadata(card) {
  const q = (sel) => card.querySelector(sel);
  const approval = shownOf.get(card);
  const leading = leadingVersion(approval);
  q(".leading-note").hidden = sameVersion(leading, approval.request_metadata || {});
  const editor = q(".metadata-edit");
  if (!editor.dataset.edited) editor.value = JSON.stringify(leading, null, 2);
}

function closeSteps(card, restoreFocus) {
  const q = (sel) => card.querySelector(sel);
  const wasApproving = !q(".approve-confirm").hidden;
  const wasOpen = wasApproving || !q(".reject-form").hidden;
  q(".approve-confirm").hidden = true;
  q(".reject-form").hidden = true;
  q(".approve").setAttribute("aria-expanded", "false");
  q(".reject").setAttribute("aria-expanded", "false");
  setFieldError(q(".reject-reason"), q(".reject-error"), "");
  setFieldError(q(".approve-comment"), q(".comment-error"), "");
  setFieldError(q(".metadata-edit"), q(".metadata-error"), "");
  if (restoreFocus) q(wasApproving ? ".approve" : ".reject").focus();
  if (wasOpen) hooksOf.get(card).stepChanged?.(null);
}

function reasonProblem(reason) {
  if (!reason) return "Please give a reason for the rejection.";
  return textProblem(reason, "reason");
}

/** The approve body the step's fields make, or null after showing what is wrong with them. */
function approveBody(card) {
  const q = (sel) => card.querySelector(sel);
  const body = {};
  const comment = q(".approve-comment").value.trim();
  const problem = textProblem(comment, "comment");
  if (problem) {
    setFieldError(q(".approve-comment"), q(".comment-error"), problem);
    q(".approve-comment").focus();
    return null;
  }
  if (comment) body.comment = comment;
  if (q(".edit-metadata").open) {
    const parsed = parseMetadata(q(".metadata-edit").value);
    if (parsed.problem) {
      setFieldError(q(".metadata-edit"), q(".metadata-error"), parsed.problem);
      q(".metadata-edit").focus();
      return null;
    }
    body.metadata = parsed.value;
  }
  return body;
}

function clearOnInput(field, message, mark) {
  field.addEventListener("input", () => {
    if (mark) field.dataset.edited = "true";
    if (field.hasAttribute("aria-invalid")) setFieldError(field, message, "");
  });
}

function wire(card, id) {
  const q = (sel) => card.querySelector(sel);
  const reason = q(".reject-reason");
  q(".approve").addEventListener("click", () => openStep(card, "approve"));
  q(".reject").addEventListener("click", () => openStep(card, "reject"));
  q(".cancel-approve").addEventListener("click", () => closeSteps(card, true));
  q(".cancel-reject").addEventListener("click", () => closeSteps(card, true));
  for (const step of card.querySelectorAll(".step")) {
    step.addEventListener("keydown", (event) => { if (event.key === "Escape") closeSteps(card, true); });
  }
  q(".confirm-approve").addEventListener("click", () => {
    const body = approveBody(card);
    if (body) decide(card, id, "approve", body);
  });
  clearOnInput(reason, q(".reject-error"), false);
  clearOnInput(q(".approve-comment"), q(".comment-error"), false);
  clearOnInput(q(".metadata-edit"), q(".metadata-error"), true);
  q(".reject-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = reason.value.trim();
    const problem = reasonProblem(text);
    if (problem) {
      setFieldError(reason, q(".reject-error"), problem);
      reason.focus();
      return;
    }
    decide(card, id, "reject", { reason: text });
  });
}

async function decide(card, id, action, body) {
  const q = (sel) => card.querySelector(sel);
  const hooks = hooksOf.get(card);
  const controls = card.querySelectorAll("button");
  const confirm = q(action === "approve" ? ".confirm-approve" : ".confirm-reject");
  const fields = card.querySelectorAll("textarea");
  controls.forEach((b) => { b.disabled = true; });
  fields.forEach((f) => { f.readOnly = true; });
  card.setAttribute("aria-busy", "true");
  showError("");
  hooks.started?.();
  let approval = null;
  let failure = null;
  try {
    approval = await api(apiPath(id, action), { method: "POST", body });
  } catch (error) {
    failure = error;
  }
  controls.forEach((b) => { b.disabled = false; });
  fields.forEach((f) => { f.readOnly = false; });
  card.removeAttribute("aria-busy");
  if (!failure) {
    resetSteps(card);
    return hooks.decided(approval, action);
  }
  const refused = failure.status === 422 ? refusedField(card, action, failure.message) : null;
  if (refused) {
    setFieldError(refused[0], refused[1], failure.message);
    refused[0].focus();
  } else if (failure.status === 403) {
    showError(problemText(failure));
    closeSteps(card, true); // deciding is not theirs: the request stays as it is
  } else if (![401, 404, 409].includes(failure.status)) {
    showError(problemText(failure));
    confirm.focus(); // e.g. the server was unreachable: trying again is the way on
  }
  hooks.failed(failure);
}

// The field a 422 is about, with its message element: the reason of a rejection; the
// metadata or comment of an approval (else null: the alert shows it).
function refusedField(card, action, message) {
  const q = (sel) => card.querySelector(sel);
  if (action === "reject") return [q(".reject-reason"), q(".reject-error")];
  if (/metadata/i.test(message) && q(".edit-metadata").open) return [q(".metadata-edit"), q(".metadata-error")];
  if (/comment/i.test(message)) return [q(".approve-comment"), q(".comment-error")];
  return null;
}

// After a recorded vote the steps start afresh (the card may offer them again elsewhere).
function resetSteps(card) {
  const q = (sel) => card.querySelector(sel);
  for (const sel of [".approve-comment", ".metadata-edit", ".reject-reason"]) {
    q(sel).value = "";
    delete q(sel).dataset.edited;
  }
  q(".edit-metadata").open = false;
}
