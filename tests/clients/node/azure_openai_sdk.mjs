// OpenAI TypeScript SDK, `new AzureOpenAI()`: key, endpoint and API version
// come from the environment only. One call: a one-token chat completion on
// a deployment named after the model.
import { AzureOpenAI } from "openai";

const client = new AzureOpenAI({ maxRetries: 0 });
const reply = await client.chat.completions.create({
  model: "gpt-4o-mini",
  messages: [{ role: "user", content: "ping" }],
  max_tokens: 1,
});
console.log(`ok: ${reply.choices.length} choice`);
