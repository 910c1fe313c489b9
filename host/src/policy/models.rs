//! The class of a model a probe discovered (the provider lists ids only).

use crate::provider::{Manifest, ModelClass};

/// The class of model `id` of the provider `manifest` describes: its default
/// model's class if it is one, else a guess from the id's words limited to
/// the provider's classes, else chat (or the provider's first class).
pub fn infer_class(id: &str, manifest: &Manifest) -> ModelClass {
    if let Some(model) = manifest.default_models.iter().find(|model| model.id == id) {
        return model.class;
    }
    let lower = id.to_ascii_lowercase();
    let guesses: [(&[&str], ModelClass); 5] = [
        (&["embed"], ModelClass::Embedding),
        (&["rerank"], ModelClass::Rerank),
        (&["moderation"], ModelClass::Moderation),
        (&["whisper", "tts", "audio", "transcribe"], ModelClass::Audio),
        (&["dall-e", "image", "imagen"], ModelClass::Image),
    ];
    for (words, class) in guesses {
        if words.iter().any(|word| lower.contains(word)) && manifest.model_classes.contains(&class)
        {
            return class;
        }
    }
    if manifest.model_classes.contains(&ModelClass::Chat) {
        ModelClass::Chat
    } else {
        manifest.model_classes.first().copied().unwrap_or(ModelClass::Chat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::{AuthShape, ModelInfo};

    fn manifest(classes: &[ModelClass]) -> Manifest {
        Manifest {
            slug: "acme".into(),
            display_name: "Acme".into(),
            plugin_version: "1".into(),
            env_vars: vec![],
            auth: AuthShape::Custom { description: String::new() },
            model_classes: classes.to_vec(),
            default_models: vec![ModelInfo {
                id: "acme-embed-special".into(),
                class: ModelClass::Chat,
                display_name: "x".into(),
                context_window: None,
                price: None,
            }],
            allowed_hosts: vec![],
            docs_url: String::new(),
            probe_cost: None,
            clients: Vec::new(),
            default_client: None,
            token_exchange: false,
        }
    }

    #[test]
    fn defaults_win_then_words_then_chat() {
        let both = manifest(&[ModelClass::Chat, ModelClass::Embedding]);
        assert_eq!(
            infer_class("acme-embed-special", &both),
            ModelClass::Chat,
            "the default's class wins"
        );
        assert_eq!(infer_class("text-embedding-3-large", &both), ModelClass::Embedding);
        assert_eq!(infer_class("gpt-5", &both), ModelClass::Chat);
        assert_eq!(
            infer_class("whisper-1", &both),
            ModelClass::Chat,
            "audio is not a class it serves"
        );
        let embeddings = manifest(&[ModelClass::Embedding, ModelClass::Rerank]);
        assert_eq!(infer_class("rerank-2.5", &embeddings), ModelClass::Rerank);
        assert_eq!(infer_class("voyage-3.5", &embeddings), ModelClass::Embedding);
    }
}
