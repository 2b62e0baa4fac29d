//! Questions about one photo (or none) that outlive the GPU device they run on.
//!
//! A lost device (a driver reset, a GPU that went away, [`Gpu::lose_device`]) fails the answer
//! in progress with [`Error::DeviceLost`]. The next [`Session::ask`] opens a new device on the
//! same adapter, loads the model again from its directory (a converted model's shards are
//! checked against their sha256 on the way in), encodes the photo (if any) again and replays the
//! conversation's turns, then answers. Nothing on disk is written. The browser recovers the
//! same way with a new worker (`web/src/index.js`).

use std::path::{Path, PathBuf};

use crate::engine::{Answer, AskOptions, Conversation, Engine, Photo};
use crate::image::Views;
use crate::model::WeightFormat;
use crate::{Error, Gpu, Result};

pub struct Session {
    dir: PathBuf,
    format: WeightFormat,
    engine: Engine,
    photo: Option<Photo>,
    conversation: Conversation,
    recoveries: usize,
}

impl Session {
    /// Load the model in `dir` onto `gpu` and encode the photo, if there is one.
    pub fn open(gpu: &Gpu, dir: &Path, format: WeightFormat, views: Option<Views>) -> Result<Self> {
        Self::open_reporting(gpu, dir, format, views, &mut |_, _| {})
    }

    /// [`Self::open`], reporting the tensors loaded (`report(taken, total)`).
    pub fn open_reporting(
        gpu: &Gpu,
        dir: &Path,
        format: WeightFormat,
        views: Option<Views>,
        report: &mut dyn FnMut(usize, usize),
    ) -> Result<Self> {
        let engine = Engine::load_reporting(dir, gpu, format, report)?;
        let photo = views.map(|v| engine.encode_photo(v)).transpose()?;
        let conversation = engine.new_conversation();
        Ok(Self { dir: dir.to_owned(), format, engine, photo, conversation, recoveries: 0 })
    }

    /// The engine on the device the model is on now.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The device the model is on now.
    pub fn gpu(&self) -> &Gpu {
        self.engine.model.gpu()
    }

    pub fn conversation(&self) -> &Conversation {
        &self.conversation
    }

    /// Times a lost device was replaced.
    pub fn recoveries(&self) -> usize {
        self.recoveries
    }

    /// [`Engine::ask`] in this session's conversation, on a new device if the last one was lost
    /// (during an earlier answer or since: a lost device stays lost, and a sync on it says so).
    pub async fn ask(
        &mut self,
        question: &str,
        options: &AskOptions,
        on_text: impl FnMut(&str) -> bool,
    ) -> Result<Answer> {
        if matches!(self.gpu().sync().await, Err(Error::DeviceLost(_))) {
            self.recover(options).await?;
        }
        self.engine.ask(&mut self.conversation, self.photo.as_ref(), question, options, on_text).await
    }

    /// Everything back on a new device. A failure (the model directory changed, the device is
    /// lost again) leaves the session on the lost device, so the next question tries again.
    async fn recover(&mut self, options: &AskOptions) -> Result<()> {
        let gpu = self.gpu().renew().await?;
        let engine = Engine::load(&self.dir, &gpu, self.format)?;
        let photo = self.photo.as_ref().map(|p| engine.encode_photo(p.views.clone())).transpose()?;
        let conversation = engine.replay(photo.as_ref(), &self.conversation, options)?;
        (self.engine, self.photo, self.conversation) = (engine, photo, conversation);
        self.recoveries += 1;
        Ok(())
    }
}
