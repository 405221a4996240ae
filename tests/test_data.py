"""Vocoder data: corpus scanning and splits, aligned crops, feature cache, bad files, collation."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from wavediff.audio import MelConfig, MelSpectrogram, load_audio
from wavediff.data import (
    Utterance,
    VocoderDataset,
    collate_vocoder,
    make_test_corpus,
    read_id_list,
    scan_corpus,
    select,
    split_corpus,
)

HOP = 256
PRESETS = ("hifigan", "diffwave")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six speech-like utterances of 0.5-1.5 s at 22050 Hz (read-only for the tests)."""
    return make_test_corpus(tmp_path_factory.mktemp("corpus"), num_utts=6, seed=0)


def _copy_corpus(corpus: Path, dest: Path) -> Path:
    shutil.copytree(corpus, dest)
    return dest


class _CountMel:
    """Counts MelSpectrogram.forward calls (monkeypatched onto the class)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        original = MelSpectrogram.forward

        def counting(module: MelSpectrogram, wav: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            return original(module, wav)

        monkeypatch.setattr(MelSpectrogram, "forward", counting)


# --------------------------------------------------------------------------------------------------
# Corpus
# --------------------------------------------------------------------------------------------------


def test_scan_ljspeech_uses_normalised_text(corpus: Path) -> None:
    utts = scan_corpus(corpus)
    lines = (corpus / "metadata.csv").read_text().splitlines()
    assert [u.id for u in utts] == [line.split("|")[0] for line in lines]
    assert [u.text for u in utts] == [line.split("|")[2] for line in lines]
    assert all(u.path == corpus / "wavs" / f"{u.id}.wav" and u.path.is_file() for u in utts)
    assert utts[0].text != lines[0].split("|")[1]  # the raw column differs (capitalised)


def test_scan_ljspeech_two_columns_and_missing_wavs(corpus: Path, tmp_path: Path) -> None:
    root = _copy_corpus(corpus, tmp_path / "c")
    lines = (root / "metadata.csv").read_text().splitlines()
    two_col = ["|".join(line.split("|")[:2]) for line in lines]
    (root / "metadata.csv").write_text("\n".join(two_col + ["GONE-1|x|x", "GONE-2|y"]) + "\n")
    (root / "wavs" / "SYN-0003.wav").unlink()
    with pytest.warns(UserWarning, match=r"3 listed utterance\(s\).*SYN-0003, GONE-1, GONE-2"):
        utts = scan_corpus(root)
    assert [u.id for u in utts] == ["SYN-0001", "SYN-0002", "SYN-0004", "SYN-0005", "SYN-0006"]
    assert utts[0].text == lines[0].split("|")[1]  # raw text when no normalised column


def test_scan_plain_folder(corpus: Path, tmp_path: Path) -> None:
    root = tmp_path / "plain"
    wav, sr = load_audio(corpus / "wavs" / "SYN-0001.wav")
    for rel in ("b.wav", "a.flac", "sub/deeper/c.ogg", "sub/a.WAV"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / rel, wav, sr, format={".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}[
            Path(rel).suffix.lower()])
    (root / "notes.txt").write_text("not audio")
    utts = scan_corpus(root)
    assert [u.id for u in utts] == ["a", "b", "sub_a", "sub_deeper_c"]
    assert all(u.text is None for u in utts)
    assert utts[3].path == root / "sub/deeper/c.ogg"


def test_scan_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        scan_corpus(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match="No audio files found"):
        scan_corpus(tmp_path / "empty")


def _fake_utts(n: int) -> list[Utterance]:
    return [Utterance(id=f"U{i:04d}", path=Path(f"/x/U{i:04d}.wav"), text=None) for i in range(n)]


def test_split_is_seeded_deterministic_and_disjoint() -> None:
    utts = _fake_utts(200)
    split = split_corpus(utts, val=10, test=0.05, seed=3)
    assert (len(split.train), len(split.val), len(split.test)) == (180, 10, 10)
    ids = [set(u.id for u in part) for part in split]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert ids[0] | ids[1] | ids[2] == {u.id for u in utts}
    again = split_corpus(list(reversed(utts)), val=10, test=0.05, seed=3)  # input order irrelevant
    assert {u.id for u in again.val} == ids[1] and {u.id for u in again.test} == ids[2]
    assert {u.id for u in split_corpus(utts, val=10, test=0.05, seed=4).val} != ids[1]
    # adding utterances keeps most of the held-out ones held out
    grown = split_corpus(_fake_utts(210), val=10, test=0, seed=3)
    assert len({u.id for u in grown.val} & ids[1]) >= 8
    with pytest.raises(ValueError, match="nothing would be left"):
        split_corpus(_fake_utts(4), val=2, test=2)


def test_read_id_list_and_select(tmp_path: Path) -> None:
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("# comment\nU0003\n\nDUMMY/U0001.wav|some text\nU0000|t|t\n")
    ids = read_id_list(ids_file)
    assert ids == ["U0003", "U0001", "U0000"]
    utts = _fake_utts(5)
    assert [u.id for u in select(utts, ids)] == ids
    with pytest.raises(ValueError, match=r"1 requested id\(s\).*NOPE"):
        select(utts, ["U0001", "NOPE"])
    with pytest.warns(UserWarning, match="NOPE"):
        assert [u.id for u in select(utts, ["NOPE", "U0002"], strict=False)] == ["U0002"]


# --------------------------------------------------------------------------------------------------
# Crops and alignment
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", PRESETS)
def test_whole_utterance_frames_and_padding(corpus: Path, preset: str) -> None:
    cfg = MelConfig.from_preset(preset)
    utts = scan_corpus(corpus)
    ds = VocoderDataset(utts, cfg, crop_frames=None)
    wav, _ = load_audio(utts[0].path, sample_rate=cfg.sample_rate)
    n = wav.shape[0]
    item = ds[0]
    frames = n // HOP + 1 if preset == "diffwave" else -(-n // HOP)
    assert item["mel"].shape == (80, frames) and item["audio"].shape == (frames * HOP,)
    assert item["audio"].dtype == torch.float32 and item["mel"].dtype == torch.float32
    np.testing.assert_array_equal(item["audio"][:n].numpy(), wav)
    assert not item["audio"][n:].any()
    # the mel is the preset's mel of the source as its own code computes it
    source = torch.from_numpy(wav)
    if preset == "hifigan":  # zero-padded up to a multiple of hop first
        source = torch.nn.functional.pad(source, (0, frames * HOP - n))
    torch.testing.assert_close(item["mel"], MelSpectrogram(cfg)(source), rtol=0, atol=1e-6)


@pytest.mark.parametrize("preset", PRESETS)
def test_crop_alignment(corpus: Path, preset: str) -> None:
    cfg = MelConfig.from_preset(preset)
    crop = 24
    ds = VocoderDataset(scan_corpus(corpus), cfg, crop_frames=crop, seed=1)
    mel_fn = MelSpectrogram(cfg)
    starts = set()
    for epoch in range(3):
        ds.set_epoch(epoch)
        for index in range(len(ds)):
            item = ds[index]
            assert item["audio"].shape == (crop * HOP,) and item["mel"].shape == (80, crop)
            full_audio, full_mel = ds.load_features(index)
            # locate the crop: the audio is a hop-aligned slice of the whole utterance
            hits = [
                f for f in range(full_mel.shape[1] - crop + 1)
                if np.array_equal(full_audio[f * HOP : (f + crop) * HOP], item["audio"].numpy())
            ]
            assert hits, "the cropped audio is not a hop-aligned slice of the utterance"
            f = hits[0]
            starts.add((index, f))
            np.testing.assert_array_equal(item["mel"].numpy(), full_mel[:, f : f + crop])
            # mel of the cropped audio region: interior frames (windows inside the crop) must
            # equal the crop of the full-utterance mel
            own = mel_fn(item["audio"])  # [80, crop] hifigan, [80, crop + 1] diffwave
            last = crop - 3 if preset == "hifigan" else crop - 2
            torch.testing.assert_close(own[:, 2 : last + 1], item["mel"][:, 2 : last + 1],
                                       rtol=0, atol=1e-5)
    assert len(starts) > len(ds)  # crops move between epochs


@pytest.mark.parametrize("preset", PRESETS)
def test_short_utterances_are_padded_not_dropped(tmp_path: Path, preset: str) -> None:
    root = make_test_corpus(tmp_path / "short", num_utts=3, seconds=(0.1, 0.2), seed=5)
    cfg = MelConfig.from_preset(preset)
    ds = VocoderDataset(scan_corpus(root), cfg, crop_frames=62)
    assert len(ds) == 3 and ds.num_skipped == 0
    silence = MelSpectrogram(cfg)(torch.zeros(8192))
    assert torch.allclose(silence, torch.full_like(silence, ds.silence_value))
    for index in range(3):
        full_audio, full_mel = ds.load_features(index)
        frames = full_mel.shape[1]
        assert frames < 62
        item = ds[index]
        assert item["audio"].shape == (62 * HOP,) and item["mel"].shape == (80, 62)
        np.testing.assert_array_equal(item["audio"][: frames * HOP].numpy(), full_audio)
        assert not item["audio"][frames * HOP :].any()
        np.testing.assert_array_equal(item["mel"][:, :frames].numpy(), full_mel)
        assert torch.all(item["mel"][:, frames:] == ds.silence_value)


def test_resamples_a_16khz_corpus(tmp_path: Path) -> None:
    root = make_test_corpus(tmp_path / "c16", num_utts=2, sample_rate=16000, seed=2)
    assert sf.info(str(root / "wavs" / "SYN-0001.wav")).samplerate == 16000
    cfg = MelConfig.hifigan()
    ds = VocoderDataset(scan_corpus(root), cfg, crop_frames=None)
    raw, _ = load_audio(root / "wavs" / "SYN-0001.wav")
    wav, sr = load_audio(root / "wavs" / "SYN-0001.wav", sample_rate=22050)
    assert sr == 22050 and abs(wav.shape[0] - raw.shape[0] * 22050 / 16000) <= 1
    item = ds[0]
    assert item["audio"].shape[0] == -(-wav.shape[0] // HOP) * HOP
    np.testing.assert_array_equal(item["audio"][: wav.shape[0]].numpy(), wav)


def test_invalid_arguments(corpus: Path) -> None:
    utts = scan_corpus(corpus)
    with pytest.raises(ValueError, match="MelConfig"):
        VocoderDataset(utts, {"preset": "hifigan"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="crop_frames"):
        VocoderDataset(utts, MelConfig.hifigan(), crop_frames=0)
    with pytest.raises(ValueError, match="empty"):
        VocoderDataset([], MelConfig.hifigan())
    with pytest.raises(ValueError, match="needs a cache_dir"):
        VocoderDataset(utts, MelConfig.hifigan()).precompute()


# --------------------------------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------------------------------


def test_cache_reuse_config_change_and_source_change(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _copy_corpus(corpus, tmp_path / "c")
    cache = tmp_path / "cache"
    counter = _CountMel(monkeypatch)
    utts = scan_corpus(root)
    plain = VocoderDataset(utts, MelConfig.hifigan(), crop_frames=30, seed=7)
    plain.set_epoch(2)
    expected = [plain[i] for i in range(len(plain))]
    counter.calls = 0
    # ---- first pass fills the cache ----
    first = VocoderDataset(utts, MelConfig.hifigan(), crop_frames=30, cache_dir=cache, seed=7)
    assert first.precompute(progress=False) == 6 and counter.calls == 6
    folders = [p for p in cache.iterdir() if p.is_dir()]
    assert len(folders) == 1
    assert len(list(folders[0].glob("*.mel.npy"))) == 6
    assert len(list(folders[0].glob("*.audio.npy"))) == 6
    assert not list(folders[0].glob(".*.tmp"))
    # ---- second pass reads from the cache: no mel computed, same items ----
    second = VocoderDataset(utts, MelConfig.hifigan(), crop_frames=30, cache_dir=cache, seed=7)
    second.set_epoch(2)
    for i in range(len(second)):
        item = second[i]
        torch.testing.assert_close(item["audio"], expected[i]["audio"], rtol=0, atol=0)
        torch.testing.assert_close(item["mel"], expected[i]["mel"], rtol=0, atol=0)
    assert counter.calls == 6 and second.precompute(progress=False) == 0
    # ---- another mel preset: another folder, everything recomputed ----
    other = VocoderDataset(utts, MelConfig.diffwave(), crop_frames=30, cache_dir=cache)
    for i in range(len(other)):
        other[i]
    assert counter.calls == 12
    assert len([p for p in cache.iterdir() if p.is_dir()]) == 2
    # ---- a touched source file is recomputed, and only that one ----
    touched = root / "wavs" / "SYN-0004.wav"
    stat = touched.stat()
    os.utime(touched, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    third = VocoderDataset(utts, MelConfig.hifigan(), crop_frames=30, cache_dir=cache)
    assert third.precompute(progress=False) == 1 and counter.calls == 13
    assert len(list(folders[0].glob("SYN-0004.*.mel.npy"))) == 1  # the stale entry is removed
    assert len(list(folders[0].glob("*.audio.npy"))) == 6


# --------------------------------------------------------------------------------------------------
# Bad files
# --------------------------------------------------------------------------------------------------


def _add_to_metadata(root: Path, *ids: str) -> None:
    with open(root / "metadata.csv", "a") as handle:
        for utt_id in ids:
            handle.write(f"{utt_id}|Text.|text.\n")


def test_bad_files_are_named_skipped_and_never_crash(corpus: Path, tmp_path: Path) -> None:
    root = _copy_corpus(corpus, tmp_path / "c")
    (root / "wavs" / "CORRUPT.wav").write_bytes(np.random.default_rng(0).bytes(5000))
    sf.write(root / "wavs" / "EMPTY.wav", np.zeros(0, dtype=np.float32), 22050)
    _add_to_metadata(root, "CORRUPT", "EMPTY")
    utts = scan_corpus(root)
    assert len(utts) == 8
    with pytest.warns(UserWarning, match=r"skips 2 bad audio file\(s\)") as record:
        ds = VocoderDataset(utts, MelConfig.hifigan(), crop_frames=20)
    message = str(record[0].message)
    assert "CORRUPT" in message and "EMPTY" in message and "no audio samples" in message
    assert ds.num_skipped == 2 and len(ds) == 6
    assert {utt_id for utt_id, _ in ds.skipped} == {"CORRUPT", "EMPTY"}
    batches = list(DataLoader(ds, batch_size=4, collate_fn=ds.collate_fn))
    assert sum(b["audio"].shape[0] for b in batches) == 6


def test_too_short_file_is_skipped(corpus: Path, tmp_path: Path) -> None:
    root = _copy_corpus(corpus, tmp_path / "c")
    sf.write(root / "wavs" / "TINY.wav", np.full(100, 0.1, dtype=np.float32), 22050)
    _add_to_metadata(root, "TINY")
    with pytest.warns(UserWarning, match=r"TINY .*too short"):
        ds = VocoderDataset(scan_corpus(root), MelConfig.diffwave())
    assert ds.skipped == [("TINY", ds.skipped[0][1])] and len(ds) == 6


def test_bad_file_found_in_getitem_is_replaced_and_remembered(corpus: Path, tmp_path: Path) -> None:
    root = _copy_corpus(corpus, tmp_path / "c")
    nan_wav = np.full(20000, 0.1, dtype=np.float32)
    nan_wav[5000] = np.nan
    sf.write(root / "wavs" / "NAN.wav", nan_wav, 22050, subtype="FLOAT")  # header scan passes
    _add_to_metadata(root, "NAN")
    utts = scan_corpus(root)
    cache = tmp_path / "cache"
    ds = VocoderDataset(utts, MelConfig.hifigan(), crop_frames=20, cache_dir=cache)
    assert ds.num_skipped == 0 and len(ds) == 7
    nan_index = [u.id for u in ds.utterances].index("NAN")
    with pytest.warns(UserWarning, match=r"NAN .*NaN"):
        item = ds[nan_index]
    assert torch.isfinite(item["audio"]).all() and item["audio"].abs().max() > 0
    assert ds.num_skipped == 1 and ds.skipped[0][0] == "NAN"
    assert all(torch.isfinite(ds[i]["mel"]).all() for i in range(len(ds)))  # no second warning
    assert ds.num_skipped == 1
    # the cache remembers: a new dataset skips it at once, without reading it
    with pytest.warns(UserWarning, match=r"NAN .*NaN"):
        again = VocoderDataset(utts, MelConfig.hifigan(), crop_frames=20, cache_dir=cache)
    assert len(again) == 6 and again.num_skipped == 1
    # precompute finds it up front and drops it; workers hitting it never raise
    fresh = VocoderDataset(utts, MelConfig.hifigan(), crop_frames=20, cache_dir=tmp_path / "c2")
    with pytest.warns(UserWarning, match=r"NAN .*NaN"):
        assert fresh.precompute(progress=False) == 6
    assert len(fresh) == 6 and fresh.skipped[0][0] == "NAN"
    uncached = VocoderDataset(utts, MelConfig.hifigan(), crop_frames=20)
    loader = DataLoader(uncached, batch_size=4, collate_fn=uncached.collate_fn, num_workers=2)
    assert sum(int(torch.isfinite(b["audio"]).all()) * len(b["audio"]) for b in loader) == 7


def test_all_bad_raises(tmp_path: Path) -> None:
    (tmp_path / "a.wav").write_bytes(b"RIFF1234garbage")
    (tmp_path / "b.wav").write_bytes(b"")
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="All 2 utterances"):
        VocoderDataset(scan_corpus(tmp_path), MelConfig.hifigan())


# --------------------------------------------------------------------------------------------------
# Collation, workers, randomness
# --------------------------------------------------------------------------------------------------


def test_collate_pads_to_longest(corpus: Path) -> None:
    ds = VocoderDataset(scan_corpus(corpus), MelConfig.hifigan(), crop_frames=None)
    items = [ds[i] for i in range(3)]
    frames = [it["mel"].shape[1] for it in items]
    batch = ds.collate_fn(items)
    longest = max(frames)
    assert batch["audio"].shape == (3, longest * HOP)
    assert batch["mel"].shape == (3, 80, longest)
    assert batch["lengths"].tolist() == frames and batch["lengths"].dtype == torch.long
    for i, it in enumerate(items):
        assert torch.equal(batch["audio"][i, : frames[i] * HOP], it["audio"])
        assert not batch["audio"][i, frames[i] * HOP :].any()
        assert torch.equal(batch["mel"][i, :, : frames[i]], it["mel"])
        assert torch.all(batch["mel"][i, :, frames[i] :] == ds.silence_value)
    plain = collate_vocoder(items)  # default pad value: the batch minimum
    assert float(plain["mel"].min()) == min(float(it["mel"].min()) for it in items)
    with pytest.raises(ValueError, match="inconsistent"):
        collate_vocoder([items[0], {"audio": torch.zeros(100), "mel": torch.zeros(80, 1)}])
    with pytest.raises(ValueError, match="empty batch"):
        collate_vocoder([])


def test_dataloader_workers_and_reproducible_crops(corpus: Path) -> None:
    ds = VocoderDataset(scan_corpus(corpus), MelConfig.diffwave(), crop_frames=16, seed=0)
    # after set_epoch: a pure function of (seed, epoch, index), whatever the workers
    ds.set_epoch(3)
    serial = list(DataLoader(ds, batch_size=2, collate_fn=collate_vocoder))
    parallel = list(DataLoader(ds, batch_size=2, collate_fn=collate_vocoder, num_workers=2))
    assert len(parallel) == 3
    for a, b in zip(serial, parallel):
        assert a["audio"].shape == (2, 16 * HOP) and a["mel"].shape == (2, 80, 16)
        assert torch.equal(a["audio"], b["audio"]) and torch.equal(a["mel"], b["mel"])
    # before set_epoch: torch's RNG, reproducible under a seed and different per epoch
    fresh = VocoderDataset(scan_corpus(corpus), MelConfig.diffwave(), crop_frames=16, seed=0)

    def epoch_audio(gen_seed: int, workers: int) -> torch.Tensor:
        loader = DataLoader(fresh, batch_size=3, collate_fn=collate_vocoder, num_workers=workers,
                            generator=torch.Generator().manual_seed(gen_seed))
        return torch.cat([b["audio"] for b in loader])

    torch.manual_seed(0)
    first = epoch_audio(0, 0)
    torch.manual_seed(0)
    assert torch.equal(first, epoch_audio(0, 0))
    assert not torch.equal(first, epoch_audio(0, 0))  # the global RNG moved on: new crops
    assert torch.equal(epoch_audio(1, 2), epoch_audio(1, 2))  # workers seeded by the generator


def test_vocoder_dataset_trains_on_given_mels(tmp_path):
    """mel_dir: crops pair the recording's audio with the same frames of the given mel; a missing or
    misshaped mel skips the utterance (named, with the reason) without marking the recording bad in
    the cache; a folder of another convention or no folder is refused."""
    import json
    import warnings

    from wavediff.audio import MelConfig
    from wavediff.data import make_test_corpus, scan_corpus
    from wavediff.data.vocoder import VocoderDataset, given_mel_path

    corpus = make_test_corpus(tmp_path / "c", num_utts=4, seed=1)
    utts = scan_corpus(corpus)
    cfg = MelConfig.hifigan()
    plain = VocoderDataset(utts, cfg, crop_frames=8, cache_dir=tmp_path / "cache", seed=5)
    mels = tmp_path / "m"
    mels.mkdir()
    rng = np.random.default_rng(0)
    for i, utt in enumerate(plain.utterances):
        frames = plain.load_features(i)[1].shape[1]
        n = frames if utt.id != plain.utterances[3].id else frames - 1  # the last one misshaped
        np.save(given_mel_path(mels, utt.id), rng.normal(size=(80, n)).astype(np.float32))
    given_mel_path(mels, plain.utterances[2].id).unlink()  # and one missing
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = VocoderDataset(utts, cfg, crop_frames=8, cache_dir=tmp_path / "cache", seed=5, mel_dir=mels)
        assert len(ds) == 3 and ds.skipped[0][1] == f"no mel for it in {mels}"
        plain.set_epoch(0)
        ds.set_epoch(0)
        for i in range(2):
            a, b = plain[i], ds[i]
            assert torch.equal(a["audio"], b["audio"])  # the same crop of the same recording
            whole = np.load(given_mel_path(mels, ds.utterances[i].id))
            starts = [s for s in range(whole.shape[1] - 7) if np.array_equal(whole[:, s:s + 8], b["mel"].numpy())]
            assert starts and np.allclose(plain.load_features(i)[1][:, starts[0]:starts[0] + 8], a["mel"].numpy())
        ds.precompute(progress=False)
    assert len(ds) == 2 and "is shaped [80," in ds.skipped[-1][1] and ds.skipped[-1][0] == plain.utterances[3].id
    assert not list((tmp_path / "cache").rglob("*.bad"))  # the recordings themselves are fine
    assert any("utterance(s) (bad audio or no usable given mel)" in str(w.message) and "no mel for it" in str(w.message)
               for w in caught)
    (mels / "mel_config.json").write_text(json.dumps(MelConfig.diffwave().to_dict()))
    with pytest.raises(ValueError, match="not in the 'hifigan' convention"):
        VocoderDataset(utts, cfg, mel_dir=mels)
    with pytest.raises(ValueError, match="does not exist"):
        VocoderDataset(utts, cfg, mel_dir=tmp_path / "nowhere")
