// LLMaaS console: refreshes the live part of a page (the element with data-live="<seconds>")
// by fetching the same page again and swapping in its <main>. Without JavaScript the page is
// complete as served (and a <noscript> meta refresh reloads it). The X-Console-Poll header tells
// the gateway that this fetch is not the user's activity (an open page still expires when idle).
(function () {
  "use strict";
  var main = document.querySelector("main[data-live]");
  if (!main) { return; }
  var seconds = parseInt(main.getAttribute("data-live"), 10) || 5;
  // A form being filled in (the alerts page's rule form) is never swapped away: once the user
  // types or picks something, or while a form field has the focus, the page stops refreshing.
  var editing = false;
  main.addEventListener("input", function () { editing = true; });
  main.addEventListener("change", function () { editing = true; });
  function refresh() {
    var focused = document.activeElement;
    if (editing || (focused && focused.form && main.contains(focused))) { return; }
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html", "X-Console-Poll": "1" }, redirect: "manual" })
      .then(function (r) {
        if (r.type === "opaqueredirect" || r.status === 303) { window.location.href = "/console/login"; return null; }
        return r.ok ? r.text() : null;
      })
      .then(function (html) {
        if (!html) { return; }
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.querySelector("main[data-live]");
        if (fresh) {
          main.replaceChildren.apply(main, Array.prototype.slice.call(fresh.childNodes).map(function (n) { return document.importNode(n, true); }));
          main.setAttribute("data-refreshed", String(Date.now()));
        }
      })
      .catch(function () { /* the next tick tries again */ });
  }
  window.setInterval(refresh, seconds * 1000);
})();
