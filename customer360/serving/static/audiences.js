// Audiences on the dashboard: the profile's consent and audiences (renderAudiences, called by
// dashboard.js on every refresh) and the audiences panel: each audience's size, and for the one
// picked its size over time (from its entries and exits) and its latest members.
"use strict";

let pickedAudience = null;

window.renderAudiences = function (p) {
  const consent = (p.consent && p.consent.email) || { status: "unknown" };
  $("consent").replaceChildren(
    el("span", { class: "consent " + consent.status }, "Email: " + consent.status),
    consent.since ? el("span", { class: "muted" }, " since " + when(consent.since)) : "");
  const list = p.audiences || [];
  fill("customer-audiences", list.length ? list.map((a) => el("li", {},
    el("strong", {}, a.audience),
    ` (${a.channel === "none" ? "no consent needed" : a.channel}) since ${when(a.entered_at)}`)) :
    [el("li", { class: "muted" }, "In no audience")]);
};

// The size as steps from `before` (the size before the first point: 0 for a whole history,
// more when the API cut it to its latest minutes) through each point's size.
function sizeChart(points, before) {
  const ns = "http://www.w3.org/2000/svg";
  const width = 560, height = 140, pad = 28;
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "Audience size over time");
  if (!points.length) return svg;
  const times = points.map((q) => Date.parse(q.at));
  const t0 = Math.min(...times), t1 = Math.max(...times, t0 + 60000);
  const max = Math.max(1, before, ...points.map((q) => q.size));
  const x = (t) => pad + (width - 2 * pad) * (t - t0) / (t1 - t0);
  const y = (v) => height - pad + 6 - (height - 2 * pad) * v / max;
  let d = `M ${x(times[0])} ${y(before)}`;
  points.forEach((q, i) => { d += ` L ${x(times[i])} ${y(i ? points[i - 1].size : before)} L ${x(times[i])} ${y(q.size)}`; });
  d += ` L ${width - pad} ${y(points[points.length - 1].size)}`;
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", d); path.setAttribute("fill", "none");
  path.setAttribute("stroke", "#4b8bd6"); path.setAttribute("stroke-width", 2);
  const label = (tx, ty, s, anchor) => {
    const t = document.createElementNS(ns, "text");
    t.setAttribute("x", tx); t.setAttribute("y", ty); t.setAttribute("text-anchor", anchor || "start");
    t.textContent = s; return t;
  };
  svg.append(path, label(0, y(max) + 4, String(max)), label(0, y(0) + 4, "0"),
    label(pad, height - 2, when(points[0].at)),
    label(width - pad, height - 2, when(points[points.length - 1].at), "end"));
  return svg;
}

async function showAudience(name) {
  pickedAudience = name;
  const [history, members] = await Promise.all([
    api("/api/audiences/" + encodeURIComponent(name) + "/history"),
    api("/api/audiences/" + encodeURIComponent(name) + "/members?limit=10"),
  ]);
  $("audience-title").textContent =
    `${name}: ${history.size} ${history.size === 1 ? "member" : "members"}`;
  $("audience-chart").replaceChildren(sizeChart(history.points, history.size_before));
  fill("audience-members", members.items.length ? members.items.map((m) => {
    const row = el("tr", { "data-id": m.customer_id }, el("td", {}, "#" + m.customer_id),
      el("td", {}, [m.first_name, m.last_name].filter(Boolean).join(" ")),
      el("td", {}, when(m.entered_at)));
    row.addEventListener("click", () => showCustomer(m.customer_id));
    return row;
  }) : [el("tr", {}, el("td", { colspan: "3", class: "muted" }, "No members"))]);
}

async function refreshAudiences() {
  try {
    const listing = await api("/api/audiences");
    fill("audiences", listing.items.length ? listing.items.map((a) => {
      const row = el("tr", { "data-name": a.name }, el("td", {}, a.name),
        el("td", {}, a.channel), el("td", { class: "num" }, a.size),
        el("td", { class: "muted" }, a.description));
      row.addEventListener("click", () => showAudience(a.name));
      return row;
    }) : [el("tr", {}, el("td", { colspan: "4", class: "muted" }, "No audiences published"))]);
    if (pickedAudience) await showAudience(pickedAudience);
  } catch (error) {
    // The profile's own refresh reports an unavailable server.
  }
}

refreshAudiences();
setInterval(refreshAudiences, REFRESH_MS);
