// Validates Kubernetes objects against the API schemas of kubernetes-models
// and @kubernetes-models/prometheus-operator (versions pinned in
// package-lock.json). Reads a JSON array of objects from the file named by
// argv[2] (or stdin), prints one line per object and exits 1 when any object
// fails, including any apiVersion/kind the packages do not know: an object
// that cannot be checked is an error, never skipped.
import { readFileSync } from "node:fs";

// Module that models an apiVersion: the built-in groups (core "v1", "apps",
// "*.k8s.io", ...) are in kubernetes-models; of the CRD groups, only the
// Prometheus Operator's is known. Anything else is unknown.
function modulePath(apiVersion) {
  const slash = apiVersion.lastIndexOf("/");
  const group = slash < 0 ? "" : apiVersion.slice(0, slash);
  const version = apiVersion.slice(slash + 1);
  if (group === "") return `kubernetes-models/${version}`;
  if (group === "monitoring.coreos.com") {
    return `@kubernetes-models/prometheus-operator/${group}/${version}`;
  }
  if (!group.includes(".") || group.endsWith(".k8s.io")) {
    return `kubernetes-models/${group}/${version}`;
  }
  throw new Error(`no schema package for API group "${group}"`);
}

async function modelClass(apiVersion, kind) {
  if (typeof apiVersion !== "string" || typeof kind !== "string") {
    throw new Error("object has no apiVersion/kind");
  }
  const path = modulePath(apiVersion);
  let mod;
  try {
    mod = await import(path);
  } catch (e) {
    throw new Error(`unknown apiVersion ${apiVersion} (${path}: ${e.code ?? e.message})`);
  }
  const cls = mod[kind];
  if (typeof cls !== "function" || typeof cls.prototype?.validate !== "function") {
    throw new Error(`unknown kind ${kind} in ${apiVersion}`);
  }
  return cls;
}

function describe(error) {
  // ajv errors carry instancePath + message; fall back to the message.
  const details = error.details ?? error.errors;
  if (Array.isArray(details) && details.length > 0) {
    return details.map((d) => `${d.instancePath || "/"} ${d.message}`).join("; ");
  }
  return error.message;
}

const input = readFileSync(process.argv[2] ?? 0, "utf8");
const objects = JSON.parse(input);
if (!Array.isArray(objects) || objects.length === 0) {
  console.error("validate: expected a non-empty JSON array of objects");
  process.exit(2);
}

let failed = 0;
for (const obj of objects) {
  const what = `${obj?.apiVersion}/${obj?.kind} ${obj?.metadata?.name ?? "<no name>"}`;
  try {
    const Model = await modelClass(obj?.apiVersion, obj?.kind);
    const model = new Model(obj);
    // The constructor fills in apiVersion/kind: make sure it is the class
    // for exactly this object.
    if (model.apiVersion !== obj.apiVersion || model.kind !== obj.kind) {
      throw new Error(`model class is ${model.apiVersion}/${model.kind}`);
    }
    model.validate();
    console.log(`ok   ${what}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${what}: ${describe(e)}`);
  }
}
console.log(`validate: ${objects.length - failed} valid, ${failed} invalid`);
process.exit(failed ? 1 : 0);
