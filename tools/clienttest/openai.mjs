// Drives the official OpenAI Node client against an FLM proxy. Run by
// proxy/clients_test.go with FLM_BASE_URL, FLM_API_KEY, FLM_CHAT_MODEL and
// FLM_EMBED_MODEL set; prints one JSON report and exits non-zero on failure.
import OpenAI from "openai";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const base = env("FLM_BASE_URL");
const client = new OpenAI({ baseURL: base, apiKey: env("FLM_API_KEY"), maxRetries: 0, timeout: 20000 });
const report = {};

const models = await client.models.list();
report.models = models.data.map((m) => m.id);

const chat = await client.chat.completions.create({
  model: env("FLM_CHAT_MODEL"),
  messages: [{ role: "user", content: "hello" }],
  max_tokens: 8,
});
report.chat = { content: chat.choices[0].message.content, usage: chat.usage };

const stream = await client.chat.completions.create({
  model: env("FLM_CHAT_MODEL"),
  messages: [{ role: "user", content: "hello" }],
  stream: true,
  stream_options: { include_usage: true },
});
let text = "";
let chunks = 0;
let usage = null;
for await (const chunk of stream) {
  chunks++;
  text += chunk.choices[0]?.delta?.content ?? "";
  if (chunk.usage) usage = chunk.usage;
}
report.stream = { text, chunks, usage };

const emb = await client.embeddings.create({ model: env("FLM_EMBED_MODEL"), input: ["a", "b"] });
report.embeddings = { count: emb.data.length, dims: emb.data[0].embedding.length };

const bad = new OpenAI({ baseURL: base, apiKey: "flm_wrong", maxRetries: 0 });
try {
  await bad.models.list();
  report.badKey = "accepted";
} catch (e) {
  report.badKey = e instanceof OpenAI.AuthenticationError ? "AuthenticationError" : `${e.constructor.name}: ${e.message}`;
}

console.log(JSON.stringify(report));
