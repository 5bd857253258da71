//! Data handlers (医療情報取扱事業者): registration and listing, audited.

use kiban_consent::HandlerInfo;

use crate::{PipelineError, Workspace};

impl Workspace {
    /// Registers a handler (R-OPT-3, R-REC-2: the producer records the handler's filing and
    /// publication before it accepts data).
    pub async fn add_handler(&self, h: &HandlerInfo) -> Result<(), PipelineError> {
        self.audited(
            "handler.add",
            &format!("handler:{}", h.code),
            async {
                if kiban_consent::get_handler(&self.db, &h.code)
                    .await?
                    .is_some()
                {
                    return Err(PipelineError::Refused(format!(
                        "医療情報取扱事業者 {} は登録済みです / handler {} is already registered",
                        h.code, h.code
                    )));
                }
                kiban_consent::add_handler(&self.db, h).await?;
                Ok(())
            },
            |_| vec![],
        )
        .await
    }

    pub async fn list_handlers(&self) -> Result<Vec<HandlerInfo>, PipelineError> {
        Ok(kiban_consent::list_handlers(&self.db).await?)
    }
}
