// Drives the official OpenAI Node client's Responses API (npm openai)
// against an FLM proxy's POST /v1/responses. Run by
// proxy/family_clients_test.go with FLM_BASE_URL (…/v1), FLM_API_KEY,
// FLM_MODEL and FLM_SCOPED_KEY (a key whose scope excludes FLM_MODEL) set;
// prints one JSON report and exits non-zero on an unexpected failure.
import OpenAI from "openai";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const baseURL = env("FLM_BASE_URL");
const model = env("FLM_MODEL");
const client = new OpenAI({ baseURL, apiKey: env("FLM_API_KEY"), maxRetries: 0, timeout: 20000 });
const report = {};
const errName = (e) => {
  for (const name of ["AuthenticationError", "PermissionDeniedError", "NotFoundError", "BadRequestError", "RateLimitError"]) {
    if (e instanceof OpenAI[name]) return name;
  }
  return `${e.constructor.name}: ${e.message}`;
};

const resp = await client.responses.create({ model, input: "hi", instructions: "be brief", max_output_tokens: 16 });
report.create = { object: resp.object, status: resp.status, text: resp.output_text, usage: resp.usage };

// stream: true, read event by event; sequence numbers must count up from 0.
const raw = await client.responses.create({
  model,
  input: [{ role: "user", content: "hi" }],
  max_output_tokens: 16,
  stream: true,
});
const events = [];
let text = "";
let ordered = true;
let last = null;
for await (const ev of raw) {
  if (ev.sequence_number !== events.length) ordered = false;
  events.push(ev.type);
  if (ev.type === "response.output_text.delta") text += ev.delta;
  if (ev.type === "response.completed" || ev.type === "response.incomplete") last = ev.response;
}
report.stream = { events, text, ordered, final: last && { status: last.status, usage: last.usage } };

// The stream helper rebuilds the response from the events (and throws on
// events it cannot place).
const helper = client.responses.stream({ model, input: "hi", max_output_tokens: 16 });
let helperText = "";
helper.on("response.output_text.delta", (ev) => {
  helperText += ev.delta;
});
const final = await helper.finalResponse();
report.helper = { text: helperText, final: final.output_text, status: final.status, usage: final.usage };

try {
  await client.responses.create({ model, input: "hi", previous_response_id: "resp_123" });
  report.previous = "accepted";
} catch (e) {
  report.previous = errName(e);
}
try {
  await new OpenAI({ baseURL, apiKey: "flm_wrong", maxRetries: 0 }).responses.create({ model, input: "hi" });
  report.badKey = "accepted";
} catch (e) {
  report.badKey = errName(e);
}
try {
  await new OpenAI({ baseURL, apiKey: env("FLM_SCOPED_KEY"), maxRetries: 0 }).responses.create({ model, input: "hi" });
  report.outOfScope = "accepted";
} catch (e) {
  report.outOfScope = errName(e);
}

console.log(JSON.stringify(report));
