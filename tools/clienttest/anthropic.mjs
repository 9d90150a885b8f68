// Drives the official Anthropic Node client (@anthropic-ai/sdk) against an
// FLM proxy's POST /v1/messages. Run by proxy/family_clients_test.go with
// FLM_ROOT_URL (the proxy's root: the SDK adds /v1/messages), FLM_API_KEY,
// FLM_MODEL and FLM_SCOPED_KEY (a key whose scope excludes FLM_MODEL) set;
// prints one JSON report and exits non-zero on an unexpected failure.
import Anthropic from "@anthropic-ai/sdk";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const baseURL = env("FLM_ROOT_URL");
const model = env("FLM_MODEL");
const client = new Anthropic({ baseURL, apiKey: env("FLM_API_KEY"), maxRetries: 0, timeout: 20000 });
const messages = [{ role: "user", content: "hi" }];
const report = {};
const errName = (e) => {
  for (const name of ["AuthenticationError", "PermissionDeniedError", "NotFoundError", "BadRequestError", "RateLimitError"]) {
    if (e instanceof Anthropic[name]) return name;
  }
  return `${e.constructor.name}: ${e.message}`;
};

const msg = await client.messages.create({ model, max_tokens: 16, system: "be brief", messages });
report.create = {
  type: msg.type,
  role: msg.role,
  text: msg.content.filter((b) => b.type === "text").map((b) => b.text).join(""),
  stop_reason: msg.stop_reason,
  usage: msg.usage,
};

// stream: true, read event by event.
const raw = await client.messages.create({ model, max_tokens: 16, messages, stream: true });
const events = [];
let text = "";
for await (const ev of raw) {
  events.push(ev.type);
  if (ev.type === "content_block_delta" && ev.delta.type === "text_delta") text += ev.delta.text;
}
report.stream = { events, text };

// The stream helper accumulates the message (and throws on a malformed
// event sequence).
const helper = client.messages.stream({ model, max_tokens: 16, messages });
let helperText = "";
helper.on("text", (t) => {
  helperText += t;
});
const final = await helper.finalMessage();
report.helper = {
  text: helperText,
  final: final.content.filter((b) => b.type === "text").map((b) => b.text).join(""),
  stop_reason: final.stop_reason,
  usage: final.usage,
};

try {
  const c = await client.messages.countTokens({ model, messages });
  report.countTokens = c.input_tokens;
} catch (e) {
  report.countTokens = errName(e);
}

try {
  await new Anthropic({ baseURL, apiKey: "flm_wrong", maxRetries: 0 }).messages.create({ model, max_tokens: 8, messages });
  report.badKey = "accepted";
} catch (e) {
  report.badKey = errName(e);
}
try {
  await new Anthropic({ baseURL, apiKey: env("FLM_SCOPED_KEY"), maxRetries: 0 }).messages.create({ model, max_tokens: 8, messages });
  report.outOfScope = "accepted";
} catch (e) {
  report.outOfScope = errName(e);
}
try {
  await client.messages.create({ model, max_tokens: 0, messages });
  report.badRequest = "accepted";
} catch (e) {
  report.badRequest = errName(e);
}

console.log(JSON.stringify(report));
