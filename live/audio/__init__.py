"""The dream follows the music: what the sound does (level, three bands, onsets, beats)
drives chosen settings through the one command layer, as a MIDI controller would.

features.py: a soundtrack -> per-video-frame features (librosa); rules.py: [[audio.map]]
rules -> commands; clip.py: a clip's own soundtrack, frame by frame (frame-exact,
reproducible); microphone.py: the live microphone (sounddevice)."""

FEATURES = ("level", "low", "mid", "high", "onset", "beat")   # each 0..1 per frame; beat is 1 on a beat
