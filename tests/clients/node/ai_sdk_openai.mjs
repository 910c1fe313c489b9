// AI SDK, the `openai` provider instance as its docs show: key and base URL
// come from the environment only. One call: a one-token text generation
// through the Chat Completions API (`openai.chat`, the form the SDK itself
// names for OpenAI-compatible servers).
import { generateText } from "ai";
import { openai } from "@ai-sdk/openai";

const { finishReason } = await generateText({
  model: openai.chat("gpt-4o-mini"),
  prompt: "ping",
  maxOutputTokens: 1,
  maxRetries: 0,
});
console.log(`ok: finish reason ${finishReason}`);
