// Google Gen AI TypeScript SDK, `new GoogleGenAI({})` as its README shows:
// key and base URL come from the environment only. One call: generate
// content.
import { GoogleGenAI } from "@google/genai";

const ai = new GoogleGenAI({});
const response = await ai.models.generateContent({ model: "gemini-2.5-flash", contents: "ping" });
console.log(`ok: ${(response.candidates ?? []).length} candidate`);
