"""Headless Chromium for the tests: load a local page and report what a person would get.

Debian's `chromium` (`make browser` installs it) driven by the `playwright` package. Only local requests go out
(`file:`, `data:`, `blob:`, and http(s) to 127.0.0.0/8, localhost or [::1]); any other request is refused and listed,
so a page that needs the network fails its test instead of quietly fetching.

    from browser import browse, Browser
    r = browse('file:///tmp/report.html', png='/tmp/report.png')  # one page: start chromium, load, stop
    with Browser() as b:                                           # many pages with one chromium
        for url in urls: r = b.visit(url)

Each visit returns a dict: `url` (after redirects), `status` (HTTP status of the page, None for file:),
`title`, `h1` and `headings` (texts of the h1s and h2s), `ids` (every element id, for #anchors), `images` (alt, src, complete,
width/height = naturalWidth/naturalHeight: 0 means it did not decode), `links` (href as written and
resolved, and text, of every <a href>), `forms` (action as written and resolved, of every <form>), `requests` (every URL asked for), `refused` (non-local requests, aborted),
`failed` (local requests that failed or answered >= 400), `errors` (uncaught JavaScript errors),
`png` (the full-page screenshot's path, when asked for) and `script` (what `visit(..., script=JS, arg=...)` returned).
"""
import asyncio, ipaddress, shutil
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

__all__ = ['CHROMIUM_ARGS', 'ChromiumMissing', 'chromium_path', 'is_local', 'Browser', 'browse']

CHROMIUM_ARGS = ['--no-sandbox', '--headless', '--disable-gpu', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync', '--no-first-run']
INSTALL = 'apt-get install chromium (Debian/Ubuntu; `make browser` does it)'

class ChromiumMissing(RuntimeError): pass

def chromium_path():
    "Path of Debian's chromium; `ChromiumMissing` says how to install it"
    exe = shutil.which('chromium') or shutil.which('chromium-browser')
    if exe is None: raise ChromiumMissing(f'Chromium is needed for the browser tests and is not installed: {INSTALL}')
    try: import playwright.sync_api  # noqa: F401
    except ImportError: raise ChromiumMissing('the playwright package drives Chromium: pip install playwright (it is in the dev extra)') from None
    return exe

def is_local(url):
    "Whether loading `url` stays on this machine"
    u = urlsplit(url)
    if u.scheme in ('file', 'data', 'blob', 'about'): return True
    if u.scheme not in ('http', 'https', 'ws', 'wss'): return False
    host = (u.hostname or '').lower()
    if host == 'localhost': return True
    try: return ipaddress.ip_address(host).is_loopback
    except ValueError: return False

_PAGE_INFO = """() => ({
    title: document.title,
    h1: [...document.querySelectorAll('h1')].map(h => h.textContent.trim()),
    headings: [...document.querySelectorAll('h2')].map(h => h.textContent.trim()),
    ids: [...document.querySelectorAll('[id]')].map(e => e.id),
    images: [...document.images].map(i => ({alt: i.alt, src: i.currentSrc || i.src, complete: i.complete,
                                            width: i.naturalWidth, height: i.naturalHeight})),
    links: [...document.querySelectorAll('a[href]')].map(a => ({href: a.getAttribute('href'), url: a.href,
                                                                 text: a.textContent.trim().slice(0, 80)})),
    forms: [...document.forms].map(f => ({action: f.getAttribute('action'), url: f.action}))})"""

class Browser:
    "One headless Chromium for many `visit`s; use as a context manager, from one thread"
    def __init__(self, width:int=1200, height:int=900):
        self.width,self.height = width,height
    def __enter__(self):
        exe = chromium_path()
        from playwright.sync_api import sync_playwright
        self._pw = sync_playwright().start()
        try: self._browser = self._pw.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
        except BaseException: self._pw.stop(); raise
        return self
    def __exit__(self, *exc):
        try: self._browser.close()
        finally: self._pw.stop()

    def visit(self, url, png=None, wait_until='load', timeout=30_000, script=None, arg=None):
        "Load `url` in a fresh page and return what it shows (see the module's doc), with `script(arg)`'s result, if any"
        refused,requests,failed,errors = [],[],[],[]
        ctx = self._browser.new_context(viewport=dict(width=self.width, height=self.height))
        try:
            def route(r):
                if is_local(r.request.url): r.continue_()
                else: refused.append(r.request.url); r.abort()
            ctx.route('**/*', route)
            page = ctx.new_page()
            page.on('request', lambda r: requests.append(r.url))
            page.on('requestfailed', lambda r: failed.append(f'{r.url} ({r.failure})') if is_local(r.url) else None)
            page.on('response', lambda r: failed.append(f'{r.url} (HTTP {r.status})') if r.status >= 400 else None)
            page.on('pageerror', lambda e: errors.append(str(e)))
            resp = page.goto(url, wait_until=wait_until, timeout=timeout)
            info = page.evaluate(_PAGE_INFO)
            if script is not None: info['script'] = page.evaluate(script, arg)
            if png is not None: page.screenshot(path=str(png), full_page=True)
            status = resp.status if resp is not None and resp.url.startswith('http') else None
            return dict(info, url=page.url, status=status, requests=requests, refused=refused, failed=failed,
                        errors=errors, png=None if png is None else str(png))
        finally: ctx.close()

def _browse(url, png, width, **kw):
    with Browser(width=width) as b: return b.visit(url, png=png, **kw)

def browse(url, png=None, width:int=1200, **kw):
    "Load `url` (a URL, or a path to a local file) in headless Chromium once and return what it shows"
    from pathlib import Path
    if not isinstance(url, str) or '://' not in url: url = Path(url).absolute().as_uri()
    try: asyncio.get_running_loop()
    except RuntimeError: return _browse(url, png, width, **kw)
    # playwright's sync API refuses to run inside an asyncio loop (Jupyter has one): give it a thread of its own
    with ThreadPoolExecutor(1) as ex: return ex.submit(_browse, url, png, width, **kw).result()
