/* <activejob-progress job-id="42"></activejob-progress>
 *
 * A live progress bar for one job, for your application's own pages:
 *
 *   <script src="/jobs/static/activejob-progress.js" defer></script>
 *   <activejob-progress job-id="42"></activejob-progress>
 *
 * It finds the dashboard from its own script URL (or a `base="/jobs"` attribute), reads
 * /api/jobs/42, follows /api/ws, and polls when the WebSocket is down. It fires
 * `activejob:progress`, `activejob:status` and `activejob:finished` events (detail: the
 * job or event), which bubble. Attributes: `job-id`, `base`, `compact` (no message line),
 * `token` (a viewer token from `activejob.web.viewer_token(...)`: sent as a Bearer header
 * with API calls and as `?token=` to the WebSocket, so your users see their own jobs
 * without the dashboard's session).
 * Its `status` attribute is the job's status (or `refused`); its `connection` attribute is
 * `live` while the WebSocket feeds it, `polling` while it reads the API every 3 seconds, and
 * absent once it follows nothing (the job finished, or the token was refused).
 * Style it from outside with ::part(bar), ::part(label), ::part(status), ::part(message).
 */
(function () {
  'use strict';
  if (window.customElements == null || customElements.get('activejob-progress')) return;

  var script = document.currentScript;
  var DEFAULT_BASE = script && script.src ? script.src.replace(/\/static\/activejob-progress\.js(\?.*)?$/, '') : '';
  var FINAL = { completed: 1, failed: 1, cancelled: 1 };
  var COLORS = { pending: '#64748b', running: '#2563eb', waiting: '#7c3aed', completed: '#059669', failed: '#dc2626', cancelled: '#b45309' };

  var CSS = [
    ':host { display: block; font: 13px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2937; }',
    '.box { border: 1px solid #e5e7eb; border-radius: 10px; padding: 10px 12px; background: #fff; }',
    '.top { display: flex; justify-content: space-between; gap: 10px; align-items: baseline; }',
    '.label { font-weight: 600; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }',
    '.status { font-size: 12px; font-weight: 600; text-transform: capitalize; }',
    '.track { height: 8px; background: #eceef3; border-radius: 999px; overflow: hidden; margin: 8px 0 6px; }',
    '.fill { height: 100%; width: 0; border-radius: 999px; background: #2563eb; transition: width .35s ease, background-color .2s; }',
    '.line { display: flex; justify-content: space-between; gap: 8px; color: #6b7280; font-size: 12px; }',
    '.message { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }',
    ':host([compact]) .line { display: none; }',
    'a { color: inherit; text-decoration: none; } a:hover { text-decoration: underline; }'
  ].join('\n');

  function el(tag, cls, part) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (part) e.setAttribute('part', part);
    return e;
  }

  class ActivejobProgress extends HTMLElement {
    static get observedAttributes() { return ['job-id', 'token']; }
  }

  ActivejobProgress.prototype.connectedCallback = function () {
    if (!this.shadowRoot) {
      var root = this.attachShadow({ mode: 'open' });
      try {
        var sheet = new CSSStyleSheet();   // CSSOM: works under a strict Content-Security-Policy
        sheet.replaceSync(CSS);
        root.adoptedStyleSheets = [sheet];
      } catch (e) {
        var style = document.createElement('style'); style.textContent = CSS; root.appendChild(style);
      }
      var box = el('div', 'box');
      var top = el('div', 'top');
      this._label = el('a', 'label', 'label');
      this._status = el('span', 'status', 'status');
      top.appendChild(this._label); top.appendChild(this._status);
      var track = el('div', 'track', 'track');
      this._fill = el('div', 'fill', 'bar');
      track.appendChild(this._fill);
      var line = el('div', 'line');
      this._message = el('span', 'message', 'message');
      this._count = el('span', 'count', 'count');
      line.appendChild(this._message); line.appendChild(this._count);
      box.appendChild(top); box.appendChild(track); box.appendChild(line);
      root.appendChild(box);
    }
    this._start();
  };

  ActivejobProgress.prototype.disconnectedCallback = function () { this._stop(); };

  ActivejobProgress.prototype.attributeChangedCallback = function (name, old, value) {
    if (old !== value && this.isConnected && this.shadowRoot) { this._stop(); this._start(); }
  };

  ActivejobProgress.prototype._base = function () {
    var b = this.getAttribute('base');
    return (b != null ? b : DEFAULT_BASE).replace(/\/$/, '');
  };

  ActivejobProgress.prototype._url = function (path) {   // the WebSocket's: browsers send it no headers
    var url = new URL(this._base() + path, location.href);
    var token = this.getAttribute('token');
    if (token) url.searchParams.set('token', token);
    return url;
  };

  ActivejobProgress.prototype._headers = function () {
    var headers = { Accept: 'application/json' };
    var token = this.getAttribute('token');
    if (token) headers.Authorization = 'Bearer ' + token;
    return headers;
  };

  ActivejobProgress.prototype._refused = function (text) {
    // The token is expired or not allowed to see this job: say so, and stop retrying.
    this._status.textContent = text;
    this._status.style.color = COLORS.failed;
    this.setAttribute('status', 'refused');
    this.dispatchEvent(new CustomEvent('activejob:error', { detail: { error: text }, bubbles: true }));
    this._stop();
  };

  ActivejobProgress.prototype._start = function () {
    this._id = parseInt(this.getAttribute('job-id'), 10);
    this._cursor = 0;
    this._alive = true;
    this._backoff = 500;
    if (!(this._id > 0)) { this._label.textContent = 'No job'; return; }
    this._label.textContent = 'Job #' + this._id;
    if (this.getAttribute('token')) this._label.removeAttribute('href');   // the pages are for operators
    else this._label.href = this._base() + '/jobs/' + this._id;
    this._load();
    this._connect();
  };

  ActivejobProgress.prototype._stop = function () {
    this._alive = false;
    this.removeAttribute('connection');   // finished, refused or detached: nothing is followed
    clearTimeout(this._retry);
    clearInterval(this._poll);
    this._poll = null;
    if (this._ws) { var ws = this._ws; this._ws = null; try { ws.close(); } catch (e) { /* closed */ } }
  };

  ActivejobProgress.prototype._load = function () {
    var self = this;
    return fetch(this._base() + '/api/jobs/' + this._id, { credentials: 'same-origin', headers: this._headers() })
      .then(function (r) {
        if (r.status === 401 || r.status === 403 || r.status === 404) {
          return r.json().catch(function () { return {}; }).then(function (body) {
            var err = new Error(body && body.error ? body.error : 'HTTP ' + r.status);
            err.refused = true;
            throw err;
          });
        }
        if (!r.ok) throw new Error('HTTP ' + r.status);
        return r.json();
      })
      .then(function (data) {
        var job = data.job;
        var last = data.events.length ? data.events[data.events.length - 1].id : 0;
        if (last > self._cursor) self._cursor = last;
        self._show(job);
      })
      .catch(function (e) {
        if (e && e.refused) self._refused(String(e.message));
        else self._status.textContent = String(e.message || e);
      });
  };

  ActivejobProgress.prototype._show = function (job) {
    this.job = job;
    this._label.textContent = (job.label || job.name) + ' #' + job.id;
    this._status.textContent = job.status;
    this._status.style.color = COLORS[job.status] || '';
    var pct = job.progress != null ? job.progress * 100 : job.progress_total ? 100 * (job.progress_current || 0) / job.progress_total : job.status === 'completed' ? 100 : 0;
    this._bar(pct, job.status);
    this._message.textContent = job.status === 'failed' ? (job.error || '') : (job.progress_message || '');
    this._count.textContent = job.progress_total != null ? (job.progress_current || 0) + ' of ' + job.progress_total : Math.round(pct) + '%';
    this.setAttribute('status', job.status);
    this.dispatchEvent(new CustomEvent('activejob:status', { detail: job, bubbles: true }));
    if (FINAL[job.status]) {
      this.dispatchEvent(new CustomEvent('activejob:finished', { detail: job, bubbles: true }));
      this._stop();
    }
  };

  ActivejobProgress.prototype._bar = function (pct, status) {
    this._fill.style.width = Math.max(0, Math.min(100, pct)) + '%';
    this._fill.style.backgroundColor = COLORS[status] || COLORS.running;
  };

  ActivejobProgress.prototype._event = function (ev) {
    if (typeof ev.cursor === 'number' && ev.cursor > this._cursor) this._cursor = ev.cursor;
    if (ev.event === 'progress') {
      var d = ev.data || {};
      var pct = typeof d.progress === 'number' ? d.progress * 100 : d.total ? 100 * (d.current || 0) / d.total : null;
      if (pct != null) this._bar(pct, 'running');
      this._message.textContent = d.message || '';
      this._count.textContent = typeof d.total === 'number' ? (d.current || 0) + ' of ' + d.total : pct != null ? Math.round(pct) + '%' : '';
      this._status.textContent = 'running';
      this.dispatchEvent(new CustomEvent('activejob:progress', { detail: ev, bubbles: true }));
    } else if (ev.event !== 'log') {
      this._load();   // a change of status: read the job again (result, error, times)
    }
  };

  ActivejobProgress.prototype._connect = function () {
    var self = this;
    if (!this._alive) return;
    var url = this._url('/api/ws');
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    var ws;
    try { ws = new WebSocket(url.href); } catch (e) { this._dropped(); return; }
    this._ws = ws;
    ws.onopen = function () {
      self._backoff = 500;
      clearInterval(self._poll); self._poll = null;
      ws.send(JSON.stringify({ action: 'subscribe', job_id: self._id, since: self._cursor }));
    };
    ws.onmessage = function (m) {
      var msg; try { msg = JSON.parse(m.data); } catch (e) { return; }
      if (msg.type === 'event' && msg.job_id === self._id) self._event(msg);
      else if (msg.type === 'subscribed') self.setAttribute('connection', 'live');
      else if (msg.type === 'error' && /^forbidden/.test(msg.error || '')) self._refused(msg.error);
    };
    ws.onclose = function (e) {
      if (self._ws !== ws) return;
      if (e.code === 4401 || e.code === 4403) self._refused(e.reason || (e.code === 4401 ? 'unauthorized' : 'forbidden'));
      else self._dropped();
    };
    ws.onerror = function () { try { ws.close(); } catch (e) { /* closed */ } };
  };

  ActivejobProgress.prototype._dropped = function () {
    var self = this;
    this._ws = null;
    if (!this._alive) return;
    this.setAttribute('connection', 'polling');
    if (!this._poll) this._poll = setInterval(function () { self._load(); }, 3000);
    this._retry = setTimeout(function () { self._connect(); }, this._backoff * (1 + Math.random() * 0.3));
    this._backoff = Math.min(this._backoff * 2, 15000);
  };

  customElements.define('activejob-progress', ActivejobProgress);
})();
