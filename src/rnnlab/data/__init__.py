"""Data: text corpora and tokenizers, token batches, built-in datasets (and more per task)."""
from rnnlab.data.builtin_series import load_builtin
from rnnlab.data.labelled_sequences import (
    SequenceSet,
    load_japanese_vowels,
    load_sequence_csv,
)
from rnnlab.data.series import TimeSeries, load_series
from rnnlab.data.series_windows import (
    ForecastData,
    StandardScaler,
    ett_split,
    ratio_split,
    window_starts,
)
from rnnlab.data.text import Corpus, load_corpus
from rnnlab.data.token_batches import ContiguousBatches, RandomWindows
from rnnlab.data.tokenizer import (
    BPETokenizer,
    CharTokenizer,
    WordTokenizer,
    fit_tokenizer,
    tokenizer_from_json,
)
