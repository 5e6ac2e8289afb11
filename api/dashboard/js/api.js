// Every request of the page goes through here: the key header, a timeout,
// 503 ("being prepared": a fresh roll-up) retried with backoff, and 401
// turned into a request for the key. Problem answers (RFC 9457) become
// ApiError with the server's detail.

const KEY = "gp.key";
const TIMEOUT_MS = 20000;

/** ApiError is a refused or failed request. */
export class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail || code || String(status));
    this.status = status; // 0: no answer (network, timeout)
    this.code = code || ""; // the problem's code, or "timeout" / "network"
    this.detail = detail || "";
  }
}

/** key is the key kept for this tab (sessionStorage: gone with the tab). */
export function key() {
  try {
    return sessionStorage.getItem(KEY) || "";
  } catch {
    return "";
  }
}

/** setKey keeps a key for this tab; "" forgets it. */
export function setKey(k) {
  if (k) sessionStorage.setItem(KEY, k);
  else sessionStorage.removeItem(KEY);
}

const listeners = { unauthorized: [] };

/** onUnauthorized registers what to do when the API refuses the key. */
export function onUnauthorized(fn) {
  listeners.unauthorized.push(fn);
}

const sleep = (ms, signal) =>
  new Promise((resolve, reject) => {
    const id = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(id);
      reject(signal.reason);
    }, { once: true });
  });

/** backoff is the wait before retry n (1, 2, ...): 2 s doubling to 30 s. */
export function backoff(n) {
  return Math.min(30000, 2000 * 2 ** (n - 1));
}

/**
 * request fetches one path once: JSON (or, with csv, the CSV text).
 * It throws ApiError for any answer but 2xx.
 */
async function request(path, { csv = false, signal } = {}) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(new ApiError(0, "timeout", "")), TIMEOUT_MS);
  const onAbort = () => ctl.abort(signal.reason);
  signal?.addEventListener("abort", onAbort, { once: true });
  let res;
  try {
    res = await fetch(path, {
      headers: { Authorization: "Bearer " + key(), Accept: csv ? "text/csv" : "application/json" },
      signal: ctl.signal,
      cache: "no-store",
    });
  } catch (e) {
    if (signal?.aborted) throw signal.reason;
    if (e instanceof ApiError) throw e;
    if (ctl.signal.reason instanceof ApiError) throw ctl.signal.reason;
    throw new ApiError(0, "network", "");
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
  }
  if (res.ok) return csv ? res.text() : res.json();
  const body = await res.json().catch(() => null);
  const err = new ApiError(res.status, body?.code || "", body?.detail || res.statusText);
  err.retryAfter = Number(res.headers.get("Retry-After")) || 0;
  if (res.status === 401) listeners.unauthorized.forEach((fn) => fn(err));
  throw err;
}

/**
 * get fetches a path. A 503 (the engine or InfluxDB not ready yet) is
 * retried after Retry-After or a growing backoff for as long as the
 * caller's signal lives; onWait(err, ms) tells the caller, so its panel can
 * say "being prepared". Anything else is thrown at once (the panel decides).
 * retry: false throws the 503 too (for answers several panels share: each
 * panel then says "being prepared" and retries on its own).
 */
export async function get(path, { csv = false, signal, onWait, retry = true } = {}) {
  for (let n = 1; ; n++) {
    try {
      return await request(path, { csv, signal });
    } catch (e) {
      if (!retry || !(e instanceof ApiError) || e.status !== 503) throw e;
      const ms = e.retryAfter ? Math.min(60000, e.retryAfter * 1000) : backoff(n);
      onWait?.(e, ms);
      await sleep(ms, signal);
    }
  }
}

/** allOutlets fetches every page of GET /v1/outlets (the page needs names and places). */
export async function allOutlets(opts) {
  const out = [];
  let cursor = "";
  for (;;) {
    const page = await get("/v1/outlets?limit=1000" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : ""), opts);
    out.push(...page.outlets);
    if (!page.next_cursor) return out;
    cursor = page.next_cursor;
  }
}
