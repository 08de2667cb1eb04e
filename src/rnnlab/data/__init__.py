"""Data: text corpora and tokenizers, token batches, built-in datasets (and more per task)."""
from rnnlab.data.text import Corpus, load_corpus
from rnnlab.data.tokenizer import BPETokenizer, CharTokenizer, WordTokenizer, fit_tokenizer, tokenizer_from_json
from rnnlab.data.token_batches import ContiguousBatches, RandomWindows
