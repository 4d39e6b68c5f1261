"End-to-end check of the web app (`pneumonia_fastai.app`) in a real browser: headless Chromium driven by Playwright."
import os, re, sys, socket, shutil, subprocess, time, urllib.request
from pathlib import Path
import pytest

SHOTS = Path(os.environ.get('APP_SCREENSHOTS', '/tmp/helpers'))  # screenshots of the page, to look at

def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

@pytest.fixture(scope='module')
def model(tmp_path_factory):
    "A small ResNet-18 trained on phantom X-rays, saved as `pneumonia-fastai train` saves it; with its test images"
    import warnings
    from fastai.vision.all import get_image_files
    from pneumonia_fastai.phantom import make_phantoms
    from pneumonia_fastai.assemble import assemble
    from pneumonia_fastai.dataloaders import xray_dls
    from pneumonia_fastai.learner import xray_learner, fine_tune_xray
    from pneumonia_fastai import share
    tmp = tmp_path_factory.mktemp('app')
    make_phantoms(tmp/'dl', n_normal=100, n_pneumonia=200, size=64, seed=0)
    assemble(tmp/'dl', tmp/'data', quiet=True)
    dls = xray_dls(tmp/'data', size=48, bs=16, seed=0)
    learn = xray_learner(dls, 'resnet18', weights=None, seed=0, bars=False, path=tmp/'run')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        fine_tune_xray(learn, freeze_epochs=0, epochs=4, lr=3e-3)
    if hasattr(share, 'save_xray_model'): fname = share.save_xray_model(learn, tmp/'model')  # weights-only model.pth + model.json
    else: learn.export(fname := tmp/'model.pkl')  # the older pickle format, while the library still writes it
    return Path(fname), tmp

@pytest.fixture(scope='module')
def app(model):
    "The app served by `launch_app` in its own process, as `pneumonia-fastai app MODEL` runs it, with limits of 1 MB and 50,000 pixels (the phantoms have 9,216)"
    fname,tmp = model
    port = free_port()
    code = f'from pneumonia_fastai.app import launch_app; launch_app({str(fname)!r}, port={port}, max_mb=1, max_pixels=50_000)'
    env = {**os.environ, 'CI': 'true'}
    proc = subprocess.Popen([sys.executable, '-c', code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    url = f'http://127.0.0.1:{port}/'
    t0 = time.time()
    while True:
        try:
            urllib.request.urlopen(url, timeout=2); break
        except OSError:
            if proc.poll() is not None: pytest.fail(f'the app exited with {proc.returncode}:\n{proc.stdout.read()}')
            if time.time()-t0>120: proc.kill(); pytest.fail('the app did not answer within 120 s')
            time.sleep(0.5)
    yield url, fname, tmp
    proc.terminate()
    try: proc.wait(10)
    except subprocess.TimeoutExpired: proc.kill()

@pytest.fixture(scope='module')
def browser():
    exe = shutil.which('chromium') or shutil.which('chromium-browser')
    if exe is None: pytest.fail("Chromium is needed for the browser tests: apt-get install chromium (or `make browser`)")
    from playwright.sync_api import sync_playwright
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, headless=True, args=['--no-sandbox'])
        yield b
        b.close()

def upload(page, url, fname):
    "Open the app and upload `fname`; the result card once it has a result or an error"
    page.goto(url)
    page.locator('#upload input[type=file]').set_input_files(str(fname))
    card = page.locator('#verdict[data-label], #verdict.error')
    card.wait_for(timeout=60_000)
    return card

def test_app_predicts_phantom(app, browser):
    url,fname,tmp = app
    from fastai.vision.all import get_image_files
    from pneumonia_fastai.share import load_xray_learner, predict_files
    # the pneumonia phantom the model finds most like pneumonia (the small phantom model misses some others)
    pp = predict_files(load_xray_learner(fname), get_image_files(tmp/'data'/'test'/'PNEUMONIA'))
    expect = pp.loc[pp.p_pneumonia.idxmax()]; f = Path(expect.file)
    assert expect.label=='PNEUMONIA', 'the phantom model calls every pneumonia test image normal: train it longer'
    page = browser.new_page(viewport=dict(width=1280, height=820))
    requests = []  # the page must not call out: no fonts, analytics or share servers on the internet
    page.on('request', lambda r: requests.append(r.url))
    card = upload(page, url, f)
    page.locator('#overlay img').wait_for(timeout=30_000)
    assert len(requests)>5 and not [u for u in requests if not u.startswith((url, 'data:', 'blob:'))], requests
    page.screenshot(path=SHOTS/'app_pneumonia.png', full_page=True)
    assert card.get_attribute('data-label')==expect.label
    assert abs(float(card.get_attribute('data-p-pneumonia'))-expect.p_pneumonia)<0.03
    text = card.inner_text()
    assert text.splitlines()[0].strip()==expect.label, text
    shown = re.search(r'probability of pneumonia ([\d.]+)%', text)
    assert shown and abs(float(shown[1])/100-expect.p_pneumonia)<0.03, text
    assert page.locator('#xray img').count()==1
    # next, the normal phantom the model finds least like pneumonia: the page changes its verdict
    preds = predict_files(load_xray_learner(fname), get_image_files(tmp/'data'/'test'/'NORMAL'))
    en = preds.loc[preds.p_pneumonia.idxmin()]
    assert en.label=='NORMAL', 'the phantom model calls every normal test image pneumonia: train it longer'
    card = upload(page, url, en.file)
    assert card.get_attribute('data-label')==en.label
    assert abs(float(card.get_attribute('data-p-pneumonia'))-en.p_pneumonia)<0.03
    page.screenshot(path=SHOTS/'app_normal.png', full_page=True)
    page.close()

def test_app_rejects_non_image(app, browser):
    url,fname,tmp = app
    bad = tmp/'report.pdf'
    bad.write_bytes(b'%PDF-1.4 not an x-ray')
    page = browser.new_page(viewport=dict(width=1280, height=820))
    card = upload(page, url, bad)
    page.screenshot(path=SHOTS/'app_not_image.png', full_page=True)
    msg = card.inner_text()
    assert 'report.pdf is not an image this app can read' in msg and 'Traceback' not in page.content()
    assert page.locator('#overlay img').count()==0
    page.close()

def test_app_rejects_oversize(app, browser):
    "Gradio refuses an upload over the limit with its own message; an image with too many pixels gets the app's"
    url,fname,tmp = app
    big = tmp/'huge.jpeg'
    big.write_bytes(b'\xff\xd8' + os.urandom(int(1.5*2**20)))
    page = browser.new_page(viewport=dict(width=1280, height=820))
    page.goto(url)
    page.locator('#upload input[type=file]').set_input_files(str(big))
    toast = page.get_by_text('exceed the maximum allowed size of 1.0 Mb')
    toast.wait_for(timeout=30_000)
    page.screenshot(path=SHOTS/'app_too_big.png', full_page=True)
    assert 'huge.jpeg' in toast.inner_text()
    assert page.locator('#verdict[data-label]').count()==0
    from PIL import Image
    Image.new('L', (300, 300), 128).save(tmp/'wide.png')
    card = upload(page, url, tmp/'wide.png')
    assert 'wide.png is 300×300 pixels; the limit is 0.05 megapixels' in card.inner_text()
    page.close()
