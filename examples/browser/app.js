// Calls an fc-wsgi trigger on another origin, as a web app would, and shows what the browser
// let the page read. A call the browser blocks (CORS) rejects with a TypeError; the page never
// sees its status. Results go to <pre id="results"> and window.corsResults (read by the test).
"use strict";

const params = new URLSearchParams(location.search);
const trigger = (params.get("trigger") || "http://127.0.0.1:9000").replace(/\/+$/, "");

const CALLS = [
  {
    name: "simple-get",
    needs: "Access-Control-Allow-Origin (no preflight)",
    path: "/hello?name=browser",
    init: {},
  },
  {
    name: "post-json",
    needs: "preflight: POST with Content-Type: application/json",
    path: "/echo",
    init: {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ hello: "fc" }),
    },
  },
  {
    name: "custom-header",
    needs: "preflight: X-Custom allowed by Access-Control-Allow-Headers",
    path: "/custom",
    init: { headers: { "X-Custom": "42" } },
  },
  {
    name: "credentials",
    needs: "credentials: include → echoed origin + Allow-Credentials: true",
    path: "/credentials",
    init: { credentials: "include" },
  },
  {
    name: "jwt-401",
    needs: "an error answer (JWT, no token) that still carries CORS headers",
    path: "/private/data",
    init: {},
  },
  {
    name: "jwt-401-preflight",
    needs: "preflight: Authorization header, then the 401 for a bad token",
    path: "/private/data",
    init: { headers: { Authorization: "Bearer not-a-valid-token" } },
  },
  {
    name: "function-502",
    needs: "the function raised: FC's 502 still carries CORS headers",
    path: "/boom",
    init: {},
  },
];

async function call({ path, init }) {
  try {
    const response = await fetch(trigger + path, { cache: "no-store", ...init });
    const text = await response.text();
    let body = text;
    try {
      body = JSON.parse(text);
    } catch (_) {
      // not JSON: keep the text
    }
    return {
      read: true,
      status: response.status,
      // Readable from JavaScript only because FC exposes it (Access-Control-Expose-Headers).
      requestId: response.headers.get("x-fc-request-id"),
      errorType: response.headers.get("x-fc-error-type"),
      body,
    };
  } catch (error) {
    return { read: false, error: `${error.name}: ${error.message}` };
  }
}

function show(spec, result) {
  const row = document.createElement("tr");
  const outcome = result.read
    ? `${result.status}, x-fc-request-id: ${result.requestId}` +
      (result.errorType ? `, x-fc-error-type: ${result.errorType}` : "")
    : `blocked by the browser (${result.error})`;
  for (const [text, cls] of [
    [`${spec.init.method || "GET"} ${spec.path}`],
    [spec.needs],
    [outcome, result.read ? "read" : "blocked"],
  ]) {
    const cell = document.createElement("td");
    cell.textContent = text;
    if (cls) cell.className = cls;
    row.append(cell);
  }
  document.getElementById("rows").append(row);
}

async function main() {
  document.getElementById("origin").textContent = location.origin;
  document.getElementById("trigger").textContent = trigger;
  const results = { origin: location.origin, trigger, calls: {} };
  for (const spec of CALLS) {
    const result = await call(spec);
    results.calls[spec.name] = result;
    show(spec, result);
  }
  document.getElementById("results").textContent = JSON.stringify(results, null, 2);
  window.corsResults = results;
}

main();
