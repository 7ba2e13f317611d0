"""SpeechBrain building blocks for 3D-Speaker's CAM++ (model ``campplus-zh-en``).

``models/campplus-zh-en/hyperparams.yaml`` names these classes, so the model loads through
SpeechBrain's own ``EncoderClassifier.from_hparams`` like every other model folder: features
(:class:`KaldiFbank`), SpeechBrain's sentence mean normalisation, then :class:`CAMPPlus`.
The network is the official 3D-Speaker inference code (PyPI ``speakerlab-slim``), unmodified;
the weights are read with ``weights_only=True`` and must match it key for key (``strict``).

This module is imported only when such a model loads (it pulls in torch and SpeechBrain).
"""

from __future__ import annotations

import torch
from speakerlab.models.campplus.DTDNN import CAMPPlus as _SpeakerlabCAMPPlus
from speechbrain.utils.checkpoints import mark_as_transfer, register_checkpoint_hooks

#: What 3D-Speaker's CAM++ was trained on: 16 kHz audio, 80 Kaldi mel bins, no dither.
SAMPLE_RATE = 16000
N_MELS = 80


class KaldiFbank(torch.nn.Module):
    """Kaldi-compatible log mel filterbank (``torchaudio.compliance.kaldi.fbank``), as 3D-Speaker
    computes it: 25 ms Povey windows every 10 ms, ``dither=0`` so the same audio always gives the
    same voiceprint. Input ``[batch, time]`` float audio, output ``[batch, frames, n_mels]``.

    The utterance mean is removed by the next module in the YAML (SpeechBrain's sentence
    ``InputNormalization``), which also ignores padded frames of a batch.
    """

    def __init__(self, n_mels: int = N_MELS, sample_rate: int = SAMPLE_RATE, dither: float = 0.0):
        super().__init__()
        self.n_mels, self.sample_rate, self.dither = int(n_mels), int(sample_rate), float(dither)

    def forward(self, wavs: torch.Tensor) -> torch.Tensor:
        import torchaudio.compliance.kaldi as kaldi

        if wavs.dim() == 1:
            wavs = wavs.unsqueeze(0)
        feats = [kaldi.fbank(w.unsqueeze(0), num_mel_bins=self.n_mels, sample_frequency=self.sample_rate, dither=self.dither)
                 for w in wavs.float()]
        return torch.stack(feats)


def own_frames(rel_len: float, frames: int, win: int = 400, hop: int = 160) -> int:
    """Frames (25 ms every 10 ms at 16 kHz) of a padded row that hold none of the padding: the padded signal was at least
    ``(frames - 1) * hop + win`` samples long, so the row had at least ``rel_len`` times that."""
    samples = int(rel_len * ((frames - 1) * hop + win))
    return max(1, min(frames, (samples - win) // hop + 1))


@register_checkpoint_hooks
class CAMPPlus(_SpeakerlabCAMPPlus):
    """3D-Speaker's CAM++ with SpeechBrain's embedding-model interface.

    ``forward(feats, wav_lens)`` returns ``[batch, 1, embedding_size]`` like SpeechBrain's
    ECAPA. CAM++ pools statistics over every frame it is given and has no mask, so a padded
    batch (diarisation's windows) is run row by row on each row's own frames (``wav_lens``:
    relative lengths, as SpeechBrain passes them); an unpadded batch runs at once.
    """

    def forward(self, feats: torch.Tensor, wav_lens: torch.Tensor | None = None) -> torch.Tensor:
        if wav_lens is None or bool((wav_lens >= 1.0).all()):
            return super().forward(feats).unsqueeze(1)
        rows = []
        for i, rel in enumerate(wav_lens.tolist()):
            x = feats[i:i + 1, :own_frames(rel, feats.shape[1])]
            rows.append(super().forward(x - x.mean(dim=1, keepdim=True)))  # centred on its own frames only
        return torch.cat(rows).unsqueeze(1)

    @mark_as_transfer
    def load_weights(self, path) -> None:
        """Load the published state dict: tensors only (no pickled code), every key matched."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.load_state_dict(state, strict=True)
