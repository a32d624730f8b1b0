/**
 * The page: a thin view. It reads the state from the URL (state.ts), draws the controls from PROPS,
 * mounts the panels (panels/index.ts), starts the engine (engine.ts, which talks to the worker(s)) and
 * redraws on requestAnimationFrame from the latest numbers. It trains nothing itself.
 */
import './style.css';
import { TWINS } from './worker/protocol.js';
import { Engine, type LabData } from './engine.js';
import { exportMetricsCsv, exportMetricsJson, downloadBytes, downloadText } from './export.js';
import { PANELS } from './panels/index.js';
import { writeText, type PanelContext } from './panels/types.js';
import { DEFAULT_LR, PROP_LIST, parseHash, pendingReset, propByName, serializeHash, type LabState, type Prop } from './state.js';
import { installTestHook } from './test-hook.js';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

/** At most this many ignored entries of a link are named; the rest are counted. */
const IGNORED_SHOWN = 8;

const parsed = parseHash(location.hash);
let state: LabState = parsed.state;
const notices = $('notices');
let ignoredNotice = ignoredSettingsNotice(parsed.ignored);
/** The hash the lab wrote last: a hashchange to it is the lab's own doing, not a new link. */
let writtenHash = serializeHash(state);
history.replaceState(null, '', writtenHash);

/** A note above the panels (outside the sticky bar, which stays small), with a button that closes it. */
function notice(text: string, kind: 'warning' | 'info' | 'error' = 'info'): HTMLElement {
  const p = document.createElement('p');
  p.className = `note ${kind} dismissible`;
  const body = document.createElement('span');
  body.textContent = text; // text, never HTML: URL contents end up here
  const close = document.createElement('button');
  close.type = 'button';
  close.className = 'note-close';
  close.textContent = '×';
  close.title = 'Close this note';
  close.setAttribute('aria-label', 'Close this note');
  close.addEventListener('click', () => p.remove());
  p.append(body, close);
  notices.append(p);
  return p;
}

/** The note that lists a link's ignored settings (none when there are none). */
function ignoredSettingsNotice(ignored: string[]): HTMLElement | null {
  if (ignored.length === 0) return null;
  const shown = ignored.slice(0, IGNORED_SHOWN).join('; ');
  const more = ignored.length > IGNORED_SHOWN ? ` and ${ignored.length - IGNORED_SHOWN} more` : '';
  const el = notice(`This link had settings that were ignored (the defaults are used instead): ${shown}${more}.`, 'warning');
  el.id = 'ignored-settings';
  return el;
}

function writeHash(s: LabState): void {
  writtenHash = serializeHash(s);
  history.replaceState(null, '', writtenHash);
}

const progressBar = $<HTMLProgressElement>('load-progress');
const progressText = $('load-text');
const engine = new Engine(state, (text, fraction) => {
  progressText.textContent = text;
  progressBar.value = fraction;
  progressBar.hidden = fraction >= 1;
  $('loading').hidden = fraction >= 1;
});
engine.onError = (message) => notice(`Error: ${message}`, 'error');
engine.onDiverged = () => engine.pause();
// Started before the controls and panels are built: the workers load and compile, and the data
// arrives, while this thread lays out the page.
const firstProbes = probesFor(state);
let sentProbes = JSON.stringify(firstProbes);
const started = engine.start(firstProbes);

// Controls: one per PROPS entry, in its group's container (top bar, network, training, or a panel).
const controls = new Map<string, HTMLInputElement | HTMLSelectElement>();
function controlFor(p: Prop): HTMLElement {
  const wrap = document.createElement('label');
  wrap.className = `control control-${p.type}`;
  const id = `ctl-${p.name}`;
  wrap.htmlFor = id;
  const name = document.createElement('span');
  name.className = 'control-name';
  name.textContent = p.label;
  wrap.append(name);
  let input: HTMLInputElement | HTMLSelectElement;
  const value = (state as Record<string, unknown>)[p.name];
  const out = document.createElement('output');
  if (p.type === 'enum') {
    const select = document.createElement('select');
    p.choices.forEach((c, i) => select.add(new Option(p.labels?.[i] ?? c, c)));
    select.value = String(value);
    input = select;
  } else if (p.type === 'bool') {
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.checked = Boolean(value);
    input = box;
  } else if (p.type === 'int' && p.max - p.min <= 10) {
    // A short range of whole numbers: a slider with its value beside it.
    const range = document.createElement('input');
    range.type = 'range';
    range.min = String(p.min);
    range.max = String(p.max);
    range.step = '1';
    range.value = String(value);
    out.textContent = String(value);
    input = range;
  } else if (p.type === 'number' && p.log) {
    // A log-scale slider: its position is log10 of the value, 20 stops per decade.
    const range = document.createElement('input');
    range.type = 'range';
    range.min = String(Math.log10(p.min));
    range.max = String(Math.log10(p.max));
    range.step = '0.05';
    range.value = String(Math.log10(Number(value)));
    // The slider's own value is the logarithm: a screen reader is given the rate itself.
    range.setAttribute('aria-valuetext', String(value));
    out.textContent = String(value);
    input = range;
  } else {
    const num = document.createElement('input');
    num.type = 'number';
    num.min = String(p.min);
    num.max = String(p.max);
    num.step = p.type === 'int' ? '1' : 'any';
    num.value = String(value);
    input = num;
  }
  input.id = id;
  input.dataset.prop = p.name;
  const applies = document.createElement('span');
  applies.className = `applies applies-${p.applies}`;
  applies.textContent = p.applies === 'now' ? 'applies now' : p.applies === 'reset' ? 'on reset' : '';
  if (p.help) wrap.title = p.help;
  const hint = document.createElement('span');
  hint.className = 'control-hint';
  hint.id = `hint-${p.name}`;
  hint.setAttribute('role', 'status');
  hint.hidden = true;
  input.addEventListener(isSlider(p) ? 'input' : 'change', () => {
    let v: string | number | boolean;
    if (p.type === 'enum') v = input.value;
    else if (p.type === 'bool') v = (input as HTMLInputElement).checked;
    else if (p.type === 'number' && p.log) v = Number((10 ** Number(input.value)).toPrecision(2));
    else v = input.value.trim() === '' ? NaN : Number(input.value); // an emptied box is no value, not 0
    if (typeof v === 'number' && (p.type === 'int' || p.type === 'number') && !(v >= p.min && v <= p.max && (p.type !== 'int' || Number.isInteger(v)))) {
      // The box shows the value in use again, and a hint says what it takes, until the next valid entry.
      const kept = String((state as Record<string, unknown>)[p.name]);
      const why = p.type === 'int' && p.belowMin && typeof v === 'number' && v < p.min ? ` (${p.belowMin})` : '';
      hint.textContent = `${input.value.trim() === '' ? 'empty' : `${input.value} is not allowed`}: ${p.type === 'int' ? 'a whole number' : 'a number'} from ${p.min} to ${p.max}${why}; still ${kept}`;
      hint.hidden = false;
      input.value = kept;
      return;
    }
    hint.hidden = true;
    setState({ [p.name]: v } as Partial<LabState>);
  });
  controls.set(p.name, input);
  wrap.append(input);
  if (isSlider(p)) wrap.append(out);
  wrap.append(applies, hint);
  return wrap;
}

function syncControls(): void {
  for (const hint of document.querySelectorAll<HTMLElement>('.control-hint')) hint.hidden = true;
  for (const p of PROP_LIST) {
    const input = controls.get(p.name);
    if (!input) continue;
    const v = (state as Record<string, unknown>)[p.name];
    if (p.type === 'bool') (input as HTMLInputElement).checked = Boolean(v);
    else if (p.type === 'number' && p.log) {
      input.value = String(Math.log10(Number(v)));
      input.setAttribute('aria-valuetext', String(v));
      const out = input.parentElement?.querySelector('output');
      if (out) out.textContent = String(v);
    } else {
      input.value = String(v);
      const out = isSlider(p) ? input.parentElement?.querySelector('output') : null;
      if (out) out.textContent = String(v);
    }
  }
}

function isSlider(p: Prop): boolean {
  return (p.type === 'number' && Boolean(p.log)) || (p.type === 'int' && p.max - p.min <= 10);
}

function setState(patch: Partial<LabState>): void {
  const before = state;
  state = { ...state, ...patch };
  // Choosing an optimizer starts it from a rate that suits it.
  if (patch.optimizer && patch.optimizer !== before.optimizer && patch.lr === undefined) state.lr = DEFAULT_LR[patch.optimizer];
  writeHash(state);
  if (state.lr !== engine.data.applied.lr) engine.setLr(state.lr);
  // A panel's view setting (a layer, a unit) changes what its probes measure, from the next step on.
  if (Object.keys(patch).some((k) => propByName(k)?.applies === 'view')) {
    const probes = probesFor(state);
    const text = JSON.stringify(probes);
    if (text !== sentProbes) {
      sentProbes = text;
      engine.setProbes(probes);
    }
  }
  syncControls();
  updatePending();
}

function updatePending(): void {
  const pending = pendingReset(engine.data.applied, state);
  const el = $('pending');
  el.textContent = pending.length ? `Changed, applies on Reset: ${pending.join(', ')}.` : '';
  $('reset').classList.toggle('attention', pending.length > 0);
}

for (const p of PROP_LIST) {
  const container = document.getElementById(`controls-${p.group}`);
  if (container) container.append(controlFor(p));
}

// Panels: a section each, with its title, claim, reading, its own settings row and its content.
const panelContext: PanelContext = {
  state: () => state,
  setState,
  reset: () => doReset(),
  play: () => engine.play(() => state.speed),
  pause: () => engine.pause(),
  advance: (steps) => engine.advance(steps),
  classify: (input) => engine.classify(input),
  sweep: (rates, steps) => engine.sweep(rates, steps),
  imported: () => engine.data.imported,
};
const readings = new Map<string, HTMLElement>();
for (const panel of PANELS) {
  const section = document.createElement('section');
  section.className = 'panel';
  section.id = `panel-${panel.id}`;
  section.setAttribute('aria-labelledby', `panel-${panel.id}-title`);
  const h2 = document.createElement('h2');
  h2.id = `panel-${panel.id}-title`;
  h2.textContent = panel.title;
  const claim = document.createElement('p');
  claim.className = 'claim';
  claim.textContent = panel.claim;
  const reading = document.createElement('p');
  reading.className = 'reading';
  reading.id = `panel-${panel.id}-reading`;
  reading.setAttribute('aria-live', 'polite');
  readings.set(panel.id, reading);
  const settings = document.createElement('div');
  settings.className = 'panel-settings';
  settings.id = `panel-settings-${panel.id}`;
  for (const p of PROP_LIST) if (p.group === panel.id) settings.append(controlFor(p));
  const body = document.createElement('div');
  body.className = 'panel-body';
  section.append(h2, claim, reading, settings, body);
  $('panels').append(section);
  panel.mount(body, panelContext);
  // The reading is the charts' text alternative: it states what they show, in numbers.
  for (const chart of section.querySelectorAll('figure.chart canvas')) chart.setAttribute('aria-describedby', reading.id);
}

function probesFor(s: LabState) {
  return PANELS.flatMap((p) => p.probes?.(s) ?? []);
}

async function doReset(): Promise<void> {
  for (const panel of PANELS) panel.reset?.();
  const probes = probesFor(state);
  sentProbes = JSON.stringify(probes);
  engine.setProbes(probes);
  await engine.reset(state);
  updatePending();
}

// The URL is the state after load too: a link pasted into this tab, an edited hash or Back is read as at
// load (with the same note about ignored entries) and applied as a Reset with those settings. The lab's
// own writes use replaceState, which fires no hashchange; a hash equal to the state changes nothing.
window.addEventListener('hashchange', () => {
  if (location.hash === writtenHash) return;
  const next = parseHash(location.hash);
  ignoredNotice?.remove();
  ignoredNotice = ignoredSettingsNotice(next.ignored);
  const unchanged = serializeHash(next.state) === serializeHash(state);
  state = next.state;
  writeHash(state);
  syncControls();
  if (unchanged) return;
  void doReset();
});

// Run controls and keyboard.
const playButton = $<HTMLButtonElement>('play');
const togglePlay = () => (engine.data.playing ? engine.pause() : engine.play(() => state.speed));
playButton.addEventListener('click', togglePlay);
$('step').addEventListener('click', () => void engine.advance(1));
$('reset').addEventListener('click', () => void doReset());
document.addEventListener('keydown', (e) => {
  const t = e.target as HTMLElement;
  if (e.ctrlKey || e.metaKey || e.altKey || ['INPUT', 'SELECT', 'TEXTAREA'].includes(t.tagName) || t.isContentEditable) return;
  // Space keeps its own meaning on what it activates (a button, the Setup summary that folds the controls).
  if (e.key === ' ' && !t.closest('button, summary, a[href], [role="button"]')) {
    e.preventDefault();
    togglePlay();
  } else if (e.key === 's' || e.key === 'ArrowRight') {
    e.preventDefault();
    void engine.advance(1);
  } else if (e.key === 'r') {
    e.preventDefault();
    void doReset();
  }
});

// Export and import.
$('export-csv').addEventListener('click', () => downloadText('bnlab-lab-metrics.csv', exportMetricsCsv(engine.data), 'text/csv'));
$('export-json').addEventListener('click', () => downloadText('bnlab-lab-metrics.json', exportMetricsJson(engine.data), 'application/json'));
for (const twin of TWINS) {
  $(`export-model-${twin}`).addEventListener('click', async () => {
    const { modelJson, safetensors } = await engine.exportModel(twin);
    downloadText(`bnlab-lab-${twin}-model.json`, modelJson, 'application/json');
    downloadBytes(`bnlab-lab-${twin}-model.safetensors`, safetensors);
  });
}
$<HTMLInputElement>('import-model').addEventListener('change', async (e) => {
  const files = [...((e.target as HTMLInputElement).files ?? [])];
  const json = files.find((f) => f.name.endsWith('.json'));
  const weights = files.find((f) => f.name.endsWith('.safetensors'));
  const status = $('import-status');
  if (!json || !weights) {
    status.textContent = 'Choose both files of a model: model.json and model.safetensors (e.g. from a bnlab train run directory).';
    return;
  }
  try {
    const info = await engine.importModel(json.name.replace(/\.json$/, ''), new Uint8Array(await json.arrayBuffer()), new Uint8Array(await weights.arrayBuffer()));
    status.textContent = `Opened ${json.name}: ${info.layers.length} layers, ${info.parameters.toLocaleString('en')} parameters${info.hasBatchNorm ? ', with batch norm' : ''}${info.dataset ? `, trained on ${info.dataset}` : ''}.`;
  } catch (err) {
    status.textContent = `Could not open the model: ${err instanceof Error ? err.message : String(err)}`;
  }
});

// Drawing: on animation frames, only when something changed; readings a few times a second. A panel out
// of view is redrawn at most once a second: redrawing every chart of every panel on every frame kept the
// main thread busy most of the time while both nets trained at full speed, and the frame rate fell.
let drawn = -1;
let lastReading = 0;
const OFFSCREEN_EVERY_MS = 1000;
const visible = new Map<string, boolean>();
const panelDrawn = new Map<string, { version: number; at: number }>();
const seen = new IntersectionObserver((entries) => {
  for (const e of entries) visible.set(e.target.id.replace(/^panel-/, ''), e.isIntersecting);
});
for (const panel of PANELS) {
  const el = document.getElementById(`panel-${panel.id}`);
  if (el) seen.observe(el);
}
function frame(now: number): void {
  const data = engine.data;
  for (const panel of PANELS) {
    const last = panelDrawn.get(panel.id);
    if (last?.version === data.version) continue;
    if (last && visible.get(panel.id) === false && now - last.at < OFFSCREEN_EVERY_MS) continue;
    panel.update(data);
    panelDrawn.set(panel.id, { version: data.version, at: now });
  }
  if (data.version !== drawn) {
    drawn = data.version;
    renderStatus(data);
  }
  if (now - lastReading > 250) {
    lastReading = now;
    for (const panel of PANELS) {
      const el = readings.get(panel.id)!;
      writeText(el, panel.reading(data));
      // While the run plays the readings change several times a second: a screen reader hears the one
      // it stops at instead of an endless queue.
      if (el.getAttribute('aria-busy') !== String(data.playing)) el.setAttribute('aria-busy', String(data.playing));
    }
  }
  requestAnimationFrame(frame);
}

function renderStatus(data: LabData): void {
  playButton.textContent = data.playing ? 'Pause' : 'Play';
  playButton.setAttribute('aria-pressed', String(data.playing));
  $('step-count').textContent = `step ${data.step}`;
  const mb = (b: number) => (b / 2 ** 20).toFixed(0);
  const memory = data.memory.filter(Boolean);
  if (memory.length) {
    $('memory').textContent = `Memory per worker: ${memory.map((m) => `wasm ${mb(m.wasm)} MB${m.live !== null ? ` (${mb(m.live)} MB in use)` : ''}${m.heap !== null ? `, JS heap ${mb(m.heap)} MB` : ''}`).join('; ')}.`;
    $('memory').dataset.bytes = JSON.stringify(memory);
  }
  $('rate').textContent = data.playing ? `${data.stepsPerSecond.toFixed(0)} steps/s` : data.busy ? 'pausing…' : 'paused';
}

function renderEnv(): void {
  const env = engine.data.env;
  $('env').textContent = env.isolated
    ? `Cross-origin isolated: ${env.workers} workers, one network each, on ${env.backend} (shared memory).`
    : `Not cross-origin isolated (the server did not send COOP/COEP headers): one worker trains both networks on one thread, ${env.backend} backend.`;
}

installTestHook(engine);
requestAnimationFrame(frame);
started
  .then(() => {
    renderEnv();
    $('env').dataset.timings = JSON.stringify(engine.data.timings);
    document.body.dataset.ready = 'true';
  })
  .catch((e: unknown) => notice(`The lab could not start: ${e instanceof Error ? e.message : String(e)}`, 'error'));
