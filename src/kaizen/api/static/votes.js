// How votes read in a request card: progress toward the quorum, the votes cast, what an
// edit of the metadata changed, and the checks of a vote's comment and edited metadata.
// Everything is built with DOM methods and textContent: the data is never markup.

export const MAX_TEXT = 4000; // kaizen.governance.models.MAX_REASON, in characters

/** "1 of 2 approvals": the approvals of the version closest to the quorum. */
export function progressText(approval) {
  const progress = approval.progress || { approvals: 0, quorum: approval.quorum || 1 };
  const word = progress.quorum === 1 ? "approval" : "approvals";
  return `${progress.approvals} of ${progress.quorum} ${word}`;
}

/** The metadata an approval would add to the most approvals: the leading edited version, if any. */
export const leadingVersion = (approval) =>
  (approval.progress && approval.progress.metadata) || approval.request_metadata || {};

// JSON with sorted keys: two objects are the same version whatever their key order.
function canonical(value) {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value && typeof value === "object") {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

export const sameVersion = (a, b) => canonical(a) === canonical(b);

/** What `after` changes of `before`, key by key (as kaizen.governance.policy.metadata_diff). */
export function diffLines(before, after) {
  const lines = [];
  const has = (o, k) => Object.prototype.hasOwnProperty.call(o, k);
  const shown = (v) => JSON.stringify(v);
  for (const key of Object.keys(before)) {
    if (has(after, key) && canonical(before[key]) !== canonical(after[key])) {
      lines.push({ kind: "changed", text: `${key}: ${shown(before[key])} → ${shown(after[key])}` });
    }
  }
  for (const key of Object.keys(after)) {
    if (!has(before, key)) lines.push({ kind: "added", text: `${key}: added, ${shown(after[key])}` });
  }
  for (const key of Object.keys(before)) {
    if (!has(after, key)) lines.push({ kind: "removed", text: `${key}: removed (was ${shown(before[key])})` });
  }
  return lines;
}

/** Fill the list `into` with the changes from `before` to `after`. */
export function showDiff(into, before, after) {
  const items = diffLines(before || {}, after || {}).map(({ kind, text }) => {
    const item = document.createElement("li");
    item.className = `diff-${kind}`;
    item.textContent = text;
    return item;
  });
  into.replaceChildren(...items);
}

/** One vote: who (and for whom), the decision, when, the comment, an edit's changes. */
export function voteItem(vote, requestMetadata) {
  const item = document.createElement("li");
  item.className = `vote vote-${vote.decision}`;
  const who = document.createElement("strong");
  who.textContent = vote.approver_id;
  item.append(who);
  if (vote.on_behalf_of) item.append(` (on behalf of ${vote.on_behalf_of})`);
  item.append(vote.decision === "approve" ? " approved" : " rejected");
  if (vote.at) {
    const when = document.createElement("time");
    when.dateTime = vote.at;
    when.textContent = new Date(vote.at).toLocaleString();
    item.append(", ", when);
  }
  if (vote.metadata) item.append(", with changes");
  if (vote.comment) {
    const comment = document.createElement("q");
    comment.className = "vote-comment";
    comment.textContent = vote.comment;
    item.append(": ", comment);
  }
  if (vote.metadata) {
    const changes = document.createElement("ul");
    changes.className = "diff";
    showDiff(changes, requestMetadata, vote.metadata);
    item.append(changes);
  }
  return item;
}

/** What is wrong with a comment (or reason) of `text`, or "". */
export function textProblem(text, what) {
  const length = [...text].length;
  if (length > MAX_TEXT) return `The ${what} may be at most ${MAX_TEXT} characters long; it is ${length}.`;
  return "";
}

/** The edited metadata of `text`: `{ value }`, or `{ problem }` saying what is wrong. */
export function parseMetadata(text) {
  let value;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { problem: `This is not valid JSON: ${error.message}` };
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return { problem: "The metadata must be a JSON object: { \"key\": value, … }." };
  }
  return { value };
}
