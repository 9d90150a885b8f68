// Drives the official Ollama JS client (npm ollama) against FLM's
// Ollama-API facade. Run by proxy/family_ollama_test.go with
// FLM_HOST, FLM_API_KEY, FLM_SCOPED_KEY (a key that may not use
// FLM_EMBED_MODEL), FLM_CHAT_MODEL and FLM_EMBED_MODEL set; prints one JSON
// report and exits non-zero on failure.
import { Ollama } from "ollama";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const host = env("FLM_HOST");
const chatModel = env("FLM_CHAT_MODEL");
const embedModel = env("FLM_EMBED_MODEL");
const client = (key) => new Ollama({ host, headers: { Authorization: `Bearer ${key}` } });
const ollama = client(env("FLM_API_KEY"));
const report = {};

report.version = (await ollama.version()).version;
report.models = (await ollama.list()).models.map((m) => m.name);
const show = await ollama.show({ model: chatModel });
report.show = { capabilities: show.capabilities, hasModelInfo: typeof show.model_info === "object" };

const chat = await ollama.chat({ model: chatModel, messages: [{ role: "user", content: "hello" }], options: { num_predict: 8 } });
report.chat = { content: chat.message.content, role: chat.message.role, done: chat.done, evalCount: chat.eval_count };

let text = "";
let parts = 0;
let last = null;
for await (const part of await ollama.chat({ model: chatModel, messages: [{ role: "user", content: "hello" }], stream: true })) {
  parts++;
  text += part.message.content;
  last = part;
}
report.chatStream = { text, parts, done: last?.done, doneReason: last?.done_reason };

const gen = await ollama.generate({ model: chatModel, prompt: "once" });
report.generate = { response: gen.response, done: gen.done };
let genText = "";
let genParts = 0;
for await (const part of await ollama.generate({ model: chatModel, prompt: "once", stream: true })) {
  genParts++;
  genText += part.response;
}
report.generateStream = { text: genText, parts: genParts };

const emb = await ollama.embed({ model: embedModel, input: ["a", "b"] });
report.embed = { count: emb.embeddings.length, dims: emb.embeddings[0].length };
const legacy = await ollama.embeddings({ model: embedModel, prompt: "a" });
report.embeddings = { dims: legacy.embedding.length };

// Errors: the client's ResponseError, with FLM's status and message.
const failure = async (f) => {
  try {
    await f();
    return { accepted: true };
  } catch (e) {
    return { name: e.name, status: e.status_code, message: e.message };
  }
};
const bad = client("flm_wrong");
report.badKey = await failure(() => bad.list());
report.badKeyStream = await failure(async () => {
  for await (const _ of await bad.chat({ model: chatModel, messages: [{ role: "user", content: "hi" }], stream: true })) {
    // unreachable: the request is refused before any line
  }
});
const scoped = client(env("FLM_SCOPED_KEY"));
report.scopedModels = (await scoped.list()).models.map((m) => m.name);
report.outOfScope = await failure(() => scoped.embed({ model: embedModel, input: "a" }));
report.outOfScopeStream = await failure(async () => {
  for await (const _ of await scoped.generate({ model: embedModel, prompt: "hi", stream: true })) {
    // unreachable
  }
});

console.log(JSON.stringify(report));
