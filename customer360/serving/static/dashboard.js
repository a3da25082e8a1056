// Customer 360 dashboard: plain JS, no dependencies, refreshes itself every few seconds.
"use strict";

const REFRESH_MS = 3000;
const $ = (id) => document.getElementById(id);
let currentId = null;
let lastProfile = null;

function token() { return sessionStorage.getItem("c360-token") || ""; }

async function api(path) {
  const headers = token() ? { Authorization: "Bearer " + token() } : {};
  const response = await fetch(path, { headers, cache: "no-store" });
  if (response.status === 401) {
    $("token-panel").hidden = false;
    throw new Error("this server needs a token");
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(typeof body.detail === "string" ? body.detail : response.statusText);
    error.status = response.status;
    throw error;
  }
  return body;
}

function text(value) { return value === null || value === undefined ? "\u2013" : String(value); }
function money(value) {
  return value === null || value === undefined ? "\u2013" :
    Number(value).toLocaleString("en", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
}
function when(iso) {
  if (!iso) return "\u2013";
  return iso.replace("T", " ").replace(/(\.\d+)?Z$/, "").slice(0, 16);
}
function ago(seconds) {
  if (seconds === null || seconds === undefined) return "?";
  const s = Math.max(0, Math.round(seconds));
  if (s < 120) return s + " s";
  if (s < 7200) return Math.round(s / 60) + " min";
  if (s < 172800) return Math.round(s / 3600) + " h";
  return Math.round(s / 86400) + " days";
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const child of children) node.append(child instanceof Node ? child : text(child));
  return node;
}
function fill(id, rows) { $(id).replaceChildren(...rows); }

function renderDetails(p) {
  const d = p.details || {};
  const pairs = [
    ["Customer id", d.customer_id], ["Name", [d.first_name, d.last_name].filter(Boolean).join(" ")],
    ["Email", d.email], ["Gender", d.gender], ["Age", d.age], ["Born", d.dob],
    ["City", d.city], ["Country", d.country],
    ["Favourite product", p.totals.favourite_product],
  ];
  fill("details", pairs.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, text(v))]));
}

function renderErrors(p) {
  fill("errors", p.recent_errors.length ? p.recent_errors.map((e) => el("tr", {},
    el("td", {}, when(e.last_at)), el("td", {}, e.error_message), el("td", {}, text(e.page)),
    el("td", { class: "num" }, e.occurrences))) :
    [el("tr", {}, el("td", { colspan: "4", class: "muted" }, "No errors"))]);
}

function renderProducts(p) {
  fill("products", p.favourite_products.length ? p.favourite_products.map((f) => el("tr", {},
    el("td", {}, f.product_name), el("td", { class: "num" }, f.purchases),
    el("td", {}, when(f.last_purchased_at)))) :
    [el("tr", {}, el("td", { colspan: "3", class: "muted" }, "No purchases"))]);
}

function spendChart(stats) {
  const ns = "http://www.w3.org/2000/svg";
  const width = 420, barHeight = 26, gap = 10, label = 70;
  const max = Math.max(1, ...stats.map((s) => s.amount_spent));
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${Math.max(1, stats.length) * (barHeight + gap)}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "Amount spent per channel");
  stats.forEach((s, i) => {
    const y = i * (barHeight + gap);
    const w = Math.max(2, (width - label - 90) * s.amount_spent / max);
    const name = document.createElementNS(ns, "text");
    name.setAttribute("x", 0); name.setAttribute("y", y + 18); name.textContent = s.channel;
    const bar = document.createElementNS(ns, "rect");
    bar.setAttribute("x", label); bar.setAttribute("y", y); bar.setAttribute("height", barHeight);
    bar.setAttribute("width", w); bar.setAttribute("rx", 3);
    bar.setAttribute("fill", s.channel === "Online" ? "#4b8bd6" : "#2e9d5b");
    const value = document.createElementNS(ns, "text");
    value.setAttribute("x", label + w + 6); value.setAttribute("y", y + 18);
    value.textContent = money(s.amount_spent);
    svg.append(name, bar, value);
  });
  return svg;
}

function renderStats(p) {
  const stats = p.purchase_stats;
  $("stats-chart").replaceChildren(stats.length ? spendChart(stats) :
    el("p", { class: "muted" }, "No orders yet"));
  const t = p.customer_360;
  fill("stats", [
    ...stats.map((s) => el("tr", {}, el("td", {}, s.channel),
      el("td", { class: "num" }, s.number_of_orders),
      el("td", { class: "num" }, s.number_of_items_purchased),
      el("td", { class: "num" }, money(s.amount_spent)))),
    el("tr", {}, el("th", {}, "Total"), el("th", { class: "num" }, t.total_orders),
      el("th", { class: "num" }, t.total_items_purchased),
      el("th", { class: "num" }, money(t.total_amount_spent))),
  ]);
}

// Value, RFM segment and lifecycle: customer_traits' columns, as the marts computed them.
function renderTraits(p) {
  const t = p.traits || {};
  const scores = t.recency_score === null || t.recency_score === undefined ? "\u2013" :
    `R${t.recency_score} F${t.frequency_score} M${t.monetary_score}`;
  $("segment").replaceChildren(
    el("span", { class: "badge segment" }, text(t.rfm_segment || "No orders")),
    el("span", { class: "badge stage" }, text(t.lifecycle_stage)));
  const pairs = [
    ["Lifetime value", money(t.lifetime_value)], ["Average order", money(t.average_order_value)],
    ["Orders 30 / 90 / 365 days",
      `${text(t.orders_last_30_days)} / ${text(t.orders_last_90_days)} / ${text(t.orders_last_365_days)}`],
    ["Days since last order", t.days_since_last_order], ["First order", t.first_order_date],
    ["Preferred channel", t.preferred_channel], ["Preferred category", t.preferred_category],
    ["RFM scores", scores],
  ];
  fill("traits", pairs.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, text(v))]));
}

function renderActivity(p) {
  const kind = (event) => event.startsWith("Email") ? "email" :
    event.startsWith("Instore") ? "store" : "online";
  fill("activity", p.activity.length ? p.activity.map((a) =>
    el("li", { class: kind(a.event) }, el("span", { class: "when" }, when(a.last_at)), a.event)) :
    [el("li", { class: "muted" }, "No activity")]);
}

function renderPropensity(p) {
  const score = p.propensity;
  if (!score) {
    $("propensity-score").textContent = "\u2013";
    fill("propensity-reasons", []);
    $("propensity-model").textContent = "No model trained yet";
    return;
  }
  $("propensity-score").textContent =
    Math.round(score.score * 100) + " % chance of an order in the next 30 days";
  fill("propensity-reasons", score.reasons.length ?
    score.reasons.map((reason) => el("li", {}, reason)) :
    [el("li", { class: "muted" }, "Nothing raises the score")]);
  $("propensity-model").textContent =
    `model ${score.model_version}, as of ${when(score.scored_as_of)}`;
}

// Every identifier stitched to the customer (customer_identities): the customer id, each email
// address (the current one marked; the others are former addresses or ones emails were sent
// to) and each browser's anonymous id, with when each was first and last seen.
const IDENTITY_KINDS = { customer_id: "Customer id", email: "Email", anonymous_id: "Browser" };
function plural(n, one, many) { return `${n} ${n === 1 ? one : many}`; }

function renderIdentities(p) {
  const identities = p.identities || [];
  const current = ((p.details || {}).email || "").trim().toLowerCase();
  const kinds = Object.keys(IDENTITY_KINDS);
  const rank = (x) => {
    const i = kinds.indexOf(x.identifier_type);
    return i < 0 ? kinds.length : i;
  };
  // Customer id, then emails, then browsers; within a kind the API's order (by identifier).
  const sorted = identities.map((x, i) => [x, i])
    .sort(([a, i], [b, j]) => rank(a) - rank(b) || i - j).map(([x]) => x);
  const count = (type) => identities.filter((x) => x.identifier_type === type).length;
  $("identities-summary").textContent = identities.length ?
    `${plural(count("email"), "email", "emails")} \u00b7 ` +
    `${plural(count("anonymous_id"), "browser", "browsers")} (anonymous ids)` : "";
  fill("identities", sorted.length ? sorted.map((x) => el("tr",
    { "data-type": x.identifier_type, "data-identifier": x.identifier },
    el("td", { class: "muted" }, IDENTITY_KINDS[x.identifier_type] || x.identifier_type),
    el("td", { class: "identifier" }, x.identifier,
      x.identifier_type === "email" && x.identifier === current ?
        el("span", { class: "badge current" }, "current") : ""),
    el("td", {}, when(x.first_seen_at)), el("td", {}, when(x.last_seen_at)))) :
    [el("tr", {}, el("td", { colspan: "4", class: "muted" }, "No identities"))]);
}

function renderFreshness(publication, asOfAge) {
  const data = publication ? ago(publication.data_age_seconds) : "?";
  const customer = asOfAge === undefined ? "" : ` \u00b7 this customer as of ${ago(asOfAge)} ago`;
  $("freshness").textContent = `data as of ${data} ago${customer}`;
}

function render(p) {
  lastProfile = p;
  $("message").hidden = true;
  $("profile").hidden = false;
  renderDetails(p); renderErrors(p); renderProducts(p); renderStats(p); renderTraits(p);
  renderActivity(p); renderPropensity(p); renderIdentities(p);
  if (window.renderAudiences) window.renderAudiences(p);
  renderFreshness(p.publication, p.as_of_age_seconds);
}

async function showCustomer(id) {
  currentId = id;
  history.replaceState(null, "", "#customer=" + id);
  await refresh();
}

async function refresh() {
  try {
    if (currentId === null) {
      renderFreshness(await api("/api/status"));
      return;
    }
    render(await api("/api/customers/" + encodeURIComponent(currentId)));
  } catch (error) {
    if (error.status === 404) {
      $("profile").hidden = true;
      $("message").hidden = false;
      $("message").textContent = `Customer ${currentId} does not exist (or was deleted).`;
    } else {
      $("freshness").textContent = "data unavailable: " + error.message;
    }
  }
}

async function search(event) {
  event.preventDefault();
  const q = $("search").value.trim();
  const results = $("results");
  try {
    const page = await api("/api/customers?limit=20&q=" + encodeURIComponent(q));
    if (page.items.length === 1) {
      results.hidden = true;
      await showCustomer(page.items[0].customer_id);
      return;
    }
    results.replaceChildren(...(page.items.length ? page.items.map((c) => {
      const item = el("li", { "data-id": c.customer_id },
        `#${c.customer_id} ${[c.first_name, c.last_name].filter(Boolean).join(" ")} \u2013 ${text(c.email)}`);
      item.addEventListener("click", () => { results.hidden = true; showCustomer(c.customer_id); });
      return item;
    }) : [el("li", { class: "muted" }, "No customer matches")]));
    results.hidden = false;
  } catch (error) {
    $("message").hidden = false;
    $("message").textContent = "Search failed: " + error.message;
  }
}

$("search-form").addEventListener("submit", search);
$("token-save").addEventListener("click", () => {
  sessionStorage.setItem("c360-token", $("token").value);
  $("token-panel").hidden = true;
  refresh();
});
const fromHash = /customer=(-?\d+)/.exec(location.hash);
if (fromHash) currentId = fromHash[1];
refresh();
setInterval(refresh, REFRESH_MS);
