// AI SDK, Google Generative AI: the key comes from the environment
// (GOOGLE_GENERATIVE_AI_API_KEY). The provider reads no base URL from the
// environment, so the manifest's note says to pass `baseURL` to
// createGoogleGenerativeAI; the test hands that URL over as the only
// argument. One call: a one-token text generation.
import { generateText } from "ai";
import { createGoogleGenerativeAI } from "@ai-sdk/google";

const google = createGoogleGenerativeAI({ baseURL: process.argv[2] });
const { finishReason } = await generateText({
  model: google("gemini-2.5-flash"),
  prompt: "ping",
  maxOutputTokens: 1,
  maxRetries: 0,
});
console.log(`ok: finish reason ${finishReason}`);
