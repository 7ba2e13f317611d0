"""A second, different speaker encoder: the GE2E LSTM of Resemblyzer (Wan et al., 2018).

ECAPA-TDNN (VoxCeleb, convolutional, 80 log-mel bands) and GE2E (LibriSpeech + VoxCeleb, a
3-layer LSTM over 40 mel bands of 1.6 s partials) make different mistakes, so a weighted sum of
their cosines identifies better than either (``docs/accuracy.md``: on children's voices most of
all). The weights are the unmodified ``pretrained.pt`` (Apache-2.0) inside the PyPI wheel
``Resemblyzer==0.1.4``; the wheel is only their carrier: it is installed without its
dependencies, its code is never imported, and the file is hashed before loading. The network and
its mel front end are rebuilt here with torch and torchaudio.
"""

from __future__ import annotations

import numpy as np

MEL_BANDS = 40
HIDDEN = 256
LAYERS = 3
PARTIAL_FRAMES = 160  # 1.6 s at a 10 ms hop
PARTIAL_STEP = 80  # partials overlap by half
#: Quiet speech is raised to this level before the mel front end (never lowered), as in training.
TARGET_DBFS = -30.0


class GE2EEncoder:
    """GE2E speaker encoder on CPU or GPU; :meth:`encode_batch` mirrors SpeechBrain's interface."""

    def __init__(self, weights_path, device: str = "cpu"):
        import torch
        import torchaudio

        try:  # tensors only: a pickle could run code on load
            state = torch.load(str(weights_path), map_location="cpu", weights_only=True)["model_state"]
        except Exception as err:  # noqa: BLE001 - torch raises UnpicklingError, RuntimeError, KeyError...
            from .errors import ModelError

            raise ModelError(f"{weights_path}: not a GE2E state dict of tensors ({type(err).__name__}) - "
                             "restore the model's weights from its wheel") from None
        self.lstm = torch.nn.LSTM(MEL_BANDS, HIDDEN, LAYERS, batch_first=True)
        self.linear = torch.nn.Linear(HIDDEN, HIDDEN)
        self.lstm.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("lstm.")})
        self.linear.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("linear.")})
        # the power mel spectrogram of librosa's defaults (Slaney mel scale and norm, centred frames)
        self.mel = torchaudio.transforms.MelSpectrogram(16000, n_fft=400, hop_length=160, n_mels=MEL_BANDS, power=2.0,
                                                        norm="slaney", mel_scale="slaney", pad_mode="constant")
        self.device = device
        for module in (self.lstm, self.linear, self.mel):
            module.to(device).eval()

    def embed(self, wav: np.ndarray) -> np.ndarray:
        """L2-normalised 256-d embedding of 16 kHz speech: the mean of its 1.6 s partials' embeddings."""
        import torch

        wav = np.asarray(wav, np.float32)
        rms = float(np.sqrt(np.mean(wav.astype(np.float64) ** 2))) + 1e-9
        wav = (wav * max(1.0, float(10 ** ((TARGET_DBFS - 20 * np.log10(rms)) / 20)))).astype(np.float32)
        with torch.inference_mode():
            mel = self.mel(torch.from_numpy(wav).to(self.device)).T  # frames x bands
            if mel.shape[0] < PARTIAL_FRAMES:
                mel = torch.nn.functional.pad(mel, (0, 0, 0, PARTIAL_FRAMES - mel.shape[0]))
            starts = range(0, mel.shape[0] - PARTIAL_FRAMES + 1, PARTIAL_STEP)
            partials = torch.stack([mel[s:s + PARTIAL_FRAMES] for s in starts])
            _, (hidden, _) = self.lstm(partials)
            e = torch.relu(self.linear(hidden[-1]))
            e = e / e.norm(dim=1, keepdim=True).clamp_min(1e-9)
            m = e.mean(0)
            return (m / m.norm().clamp_min(1e-9)).cpu().numpy()

    def encode_batch(self, wavs, wav_lens=None):
        """[batch, 1, 256] embeddings of a padded batch (``wav_lens``: relative lengths, as SpeechBrain)."""
        import torch

        wavs = wavs.cpu().numpy()
        lens = np.ones(len(wavs)) if wav_lens is None else np.asarray(wav_lens.cpu() if hasattr(wav_lens, "cpu") else wav_lens)
        out = [self.embed(w[: max(1, int(round(r * w.shape[-1])))]) for w, r in zip(wavs, lens)]
        return torch.from_numpy(np.stack(out))[:, None, :]
