// The web app's error boundary, loaded before everything else: an uncaught
// error or an unhandled promise rejection shows a recoverable message (never
// a blank or frozen screen) and is reported to POST /api/v1/client-errors
// (rate-limited by the server; a few per page load at most from here).
(function () {
  'use strict';

  const MAX_REPORTS = 5;
  const reported = new Set();

  function box() {
    return document.getElementById('app-error');
  }

  function show() {
    const el = box();
    if (el) el.hidden = false;
  }

  function report(kind, error, fallbackMessage) {
    const message = String((error && error.message) ? `${error.name || 'Error'}: ${error.message}` : (fallbackMessage || error || 'Unknown error')).slice(0, 1000);
    const key = `${kind}:${message}`;
    if (reported.has(key) || reported.size >= MAX_REPORTS) return;
    reported.add(key);
    const headers = { 'Content-Type': 'application/json' };
    try {
      const token = window.skillshareApp && window.skillshareApp.client.session.accessToken;
      if (token) headers.Authorization = `Bearer ${token}`;
    } catch { /* the app did not start: report without a user */ }
    fetch('/api/v1/client-errors', {
      method: 'POST',
      headers,
      body: JSON.stringify({
        kind, message, stack: String((error && error.stack) || '').slice(0, 8000), url: location.href.slice(0, 2000),
      }),
      keepalive: true,
    }).catch(() => { /* offline: nothing more to do */ });
  }

  window.addEventListener('error', (event) => {
    if (!event.error && !event.message) return; // a failed resource load, not a script error
    report('error', event.error, event.message);
    show();
  });
  window.addEventListener('unhandledrejection', (event) => {
    report('unhandledrejection', event.reason);
    show();
  });

  document.addEventListener('DOMContentLoaded', () => {
    document.getElementById('app-error-dismiss').addEventListener('click', () => { box().hidden = true; });
    document.getElementById('app-error-reload').addEventListener('click', () => location.reload());
  });
}());
