// The playground: lists the models (POST /v2/repository/index, GET
// /v2/models/{m}), sends the picked image to the image endpoint (POST
// /v2/models/{m}/segment) and draws the mask it answers over the image.
'use strict';

const state = { token: '', model: '', masks: 0 };
const $ = (id) => document.getElementById(id);

// The colour of a class id: the same golden-ratio hue walk as the C++ and
// Python SDKs' overlays (client/overlay.cc), so every view agrees.
function classColor(id) {
  const hue = (0.2 + id * 0.6180339887498949) % 1;
  const saturation = [0.95, 0.6][id % 2];
  const value = [1.0, 0.8, 0.6][Math.floor(id / 2) % 3];
  const h6 = hue * 6;
  const sector = Math.floor(h6) % 6;
  const f = h6 - Math.floor(h6);
  const p = value * (1 - saturation);
  const q = value * (1 - saturation * f);
  const t = value * (1 - saturation * (1 - f));
  const rgb = [[value, t, p], [q, value, p], [p, value, t], [p, q, value],
               [t, p, value], [value, p, q]][sector];
  return rgb.map((x) => Math.round(Math.min(Math.max(x, 0), 1) * 255));
}

function headers(extra) {
  const all = Object.assign({}, extra);
  if (state.token) all.Authorization = 'Bearer ' + state.token;
  return all;
}

function showStatus(text, isError) {
  $('status').textContent = text;
  $('status').classList.toggle('error', Boolean(isError));
}

// The answer's JSON, or an Error carrying the server's message and code.
async function call(path, options) {
  const response = await fetch(path, options);
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
  if (!response.ok) {
    const error = new Error((body && body.error) || text ||
                            response.statusText);
    error.code = response.status;
    throw error;
  }
  return body;
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

async function loadModels() {
  const body = $('models').tBodies[0];
  body.replaceChildren();
  let models;
  try {
    models = await call('/v2/repository/index', {
      method: 'POST', headers: headers({'Content-Type': 'application/json'}),
      body: '{}'});
  } catch (error) {
    if (error.code === 401 || error.code === 403) $('token-row').hidden = false;
    showStatus('Cannot list the models: ' + error.message, true);
    return;
  }
  showStatus(models.length ? 'Pick an image.' : 'The server has no models.');
  for (const model of models) {
    const row = body.insertRow();
    row.dataset.model = model.name;
    const pick = document.createElement('input');
    pick.type = 'radio';
    pick.name = 'model';
    pick.value = model.name;
    pick.disabled = model.state !== 'READY';
    pick.addEventListener('change', () => { state.model = model.name; });
    row.insertCell().append(pick);
    cell(row, model.name);
    cell(row, model.version || '');
    cell(row, model.state, 'state-' + model.state).title = model.reason || '';
    const input = cell(row, '');
    if (model.state === 'READY' && !state.model) {
      pick.checked = true;
      state.model = model.name;
    }
    if (model.state === 'READY') describe(model.name, input);
  }
}

async function describe(name, into) {
  try {
    const metadata = await call('/v2/models/' + encodeURIComponent(name),
                                {headers: headers()});
    const properties = metadata.properties || {};
    into.textContent = [properties.input_size, properties.input_resize]
        .filter(Boolean).join(' ');
  } catch (error) {
    into.textContent = '?';
    into.title = error.message;
  }
}

const kTypes = {jpg: 'image/jpeg', jpeg: 'image/jpeg', png: 'image/png',
                webp: 'image/webp', bmp: 'image/bmp', tif: 'image/tiff',
                tiff: 'image/tiff'};

async function segment(file) {
  if (!state.model) {
    showStatus('No model is ready to take the image.', true);
    return;
  }
  const type = file.type ||
      kTypes[(file.name.split('.').pop() || '').toLowerCase()] || '';
  showStatus('Segmenting ' + file.name + ' with ' + state.model + '...');
  let answer;
  try {
    answer = await call(
        '/v2/models/' + encodeURIComponent(state.model) +
            '/segment?mask_encoding=raw',
        {method: 'POST', body: file,
         headers: headers({'Content-Type': type, Accept: 'application/json'})});
  } catch (error) {
    if (error.code === 401 || error.code === 403) $('token-row').hidden = false;
    showStatus('The server refused the image: ' + error.message, true);
    return;
  }
  await drawImage(file, answer);
  drawMask(answer);
  fillClasses(answer);
  fillTiming(answer);
  $('answered-by').textContent = 'Model ' + answer.model + ', version ' +
      answer.model_version + ', ' + answer.width + 'x' + answer.height + '.';
  $('result').hidden = false;
  $('result').dataset.masks = String(++state.masks);
  showStatus('Segmented ' + file.name + '.');
}

async function drawImage(file, answer) {
  const canvas = $('image-layer');
  canvas.width = answer.width;
  canvas.height = answer.height;
  const context = canvas.getContext('2d');
  try {
    const bitmap = await createImageBitmap(file);
    context.drawImage(bitmap, 0, 0, answer.width, answer.height);
  } catch (error) {  // A format the browser cannot show (TIFF): grey.
    context.fillStyle = '#888';
    context.fillRect(0, 0, answer.width, answer.height);
  }
}

// The class id of every pixel, row-major, from the RAW mask (one byte per
// pixel, or two little-endian bytes for models of more than 256 classes).
function maskIds(answer) {
  const bytes = Uint8Array.from(atob(answer.mask.data), (c) => c.charCodeAt(0));
  const pixels = answer.width * answer.height;
  if (bytes.length === pixels) return bytes;
  if (bytes.length === 2 * pixels) {
    return new Uint16Array(bytes.buffer, 0, pixels);
  }
  throw new Error('the mask holds ' + bytes.length + ' bytes for ' + pixels +
                  ' pixels');
}

function drawMask(answer) {
  const canvas = $('mask-layer');
  canvas.width = answer.width;
  canvas.height = answer.height;
  const context = canvas.getContext('2d');
  const image = context.createImageData(answer.width, answer.height);
  const ids = maskIds(answer);
  const colors = new Map();
  for (let i = 0; i < ids.length; ++i) {
    let color = colors.get(ids[i]);
    if (!color) colors.set(ids[i], color = classColor(ids[i]));
    image.data.set(color, 4 * i);
    image.data[4 * i + 3] = 255;
  }
  context.putImageData(image, 0, 0);
  canvas.style.opacity = String($('opacity').value / 100);
}

function fillClasses(answer) {
  const body = $('classes').tBodies[0];
  body.replaceChildren();
  const stats = answer.class_stats.slice().sort((a, b) => b.pixels - a.pixels);
  for (const stat of stats) {
    const row = body.insertRow();
    const color = classColor(stat.class_id);
    row.dataset.classId = String(stat.class_id);
    row.dataset.color = color.join(',');
    const swatch = document.createElement('span');
    swatch.className = 'swatch';
    swatch.style.background = 'rgb(' + color.join(',') + ')';
    row.insertCell().append(swatch);
    cell(row, stat.class_id + ' ' + (stat.name || ''));
    cell(row, String(stat.pixels), 'number');
    cell(row, (100 * stat.share).toFixed(2) + ' %', 'number');
  }
}

function fillTiming(answer) {
  const body = $('timing').tBodies[0];
  body.replaceChildren();
  const timing = answer.timing;
  for (const [name, key] of [['Queue', 'queue_us'],
                             ['Preprocess', 'preprocess_us'],
                             ['Inference', 'inference_us'],
                             ['Postprocess', 'postprocess_us']]) {
    const row = body.insertRow();
    cell(row, name);
    cell(row, (timing[key] / 1000).toFixed(2) + ' ms', 'number');
  }
  const row = body.insertRow();
  cell(row, 'Batch size, tiles');
  cell(row, timing.batch_size + ', ' + timing.tiles, 'number');
}

function start() {
  $('file').addEventListener('change', () => {
    if ($('file').files.length) segment($('file').files[0]);
  });
  const drop = $('drop');
  drop.addEventListener('dragover', (event) => {
    event.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (event) => {
    event.preventDefault();
    drop.classList.remove('over');
    if (event.dataTransfer.files.length) segment(event.dataTransfer.files[0]);
  });
  $('opacity').addEventListener('input', () => {
    $('mask-layer').style.opacity = String($('opacity').value / 100);
  });
  $('token-apply').addEventListener('click', () => {
    state.token = $('token').value.trim();
    state.model = '';
    loadModels();
  });
  loadModels();
}

start();
