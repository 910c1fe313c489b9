// Anthropic TypeScript SDK, `new Anthropic()` as its README shows: key and
// base URL come from the environment only. One call: a one-token message.
import Anthropic from "@anthropic-ai/sdk";

const client = new Anthropic({ maxRetries: 0 });
const message = await client.messages.create({
  model: "claude-haiku-4-5",
  max_tokens: 1,
  messages: [{ role: "user", content: "ping" }],
});
console.log(`ok: stop reason ${message.stop_reason}`);
