"""An interactive API docs page, served without any CDN (the machines may have no internet)."""
from __future__ import annotations

from flask import Response

PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>Lianhu API</title>
<style>body{font-family:system-ui,sans-serif;margin:2rem;max-width:72rem}details{border:1px solid #ddd;
border-radius:6px;margin:.4rem 0;padding:.4rem .8rem}summary{cursor:pointer}code,pre{background:#f5f5f5}
pre{padding:.5rem;overflow:auto}.m{display:inline-block;width:4.5rem;font-weight:bold}
textarea{width:100%;height:6rem;font-family:monospace}</style></head>
<body><h1>Lianhu API v1</h1>
<p>The OpenAPI document: <a href="/api/openapi.json">/api/openapi.json</a>. Token for "try it":
<input id="tok" size="60" placeholder="Bearer token"></p><div id="ops">Loading…</div>
<script>
const esc = s => String(s).replace(/[&<>"]/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]));
fetch('/api/openapi.json').then(r => r.json()).then(spec => {
  const box = document.getElementById('ops'); box.innerHTML = '';
  for (const [path, item] of Object.entries(spec.paths)) for (const [method, op] of Object.entries(item)) {
    if (typeof op !== 'object' || !op.responses) continue;
    const d = document.createElement('details');
    d.innerHTML = `<summary><span class="m">${method.toUpperCase()}</span><code>${esc(path)}</code>
      ${esc(op.summary || '')}</summary><pre>${esc(JSON.stringify(op, null, 2))}</pre>
      <p>path: <input class="p" size="70" value="${esc(path)}"></p>
      <textarea class="b" placeholder="JSON body"></textarea><button>Send</button><pre class="o"></pre>`;
    d.querySelector('button').onclick = async () => {
      const body = d.querySelector('.b').value.trim();
      const r = await fetch(d.querySelector('.p').value, {method: method.toUpperCase(),
        headers: Object.assign({'Content-Type': 'application/json'},
          document.getElementById('tok').value ? {'Authorization': 'Bearer ' + document.getElementById('tok').value} : {}),
        body: body && method !== 'get' ? body : undefined});
      d.querySelector('.o').textContent = r.status + '\\n' + await r.text();
    };
    box.appendChild(d);
  }
});
</script></body></html>"""


def init_app(app) -> None:
    @app.get("/api/docs")
    def api_docs():
        """Browse and try the API."""
        return Response(PAGE, mimetype="text/html")
