"""KerasHub presets made here, offline: small randomly initialised backbones with a vocabulary of our own."""

import io
from pathlib import Path

import keras
import tensorflow as tf

from rakuten_mm.models.encoder import import_keras_hub

# Two layers of width 32: seconds to embed or fine-tune on the tiny pipeline's rows.
TINY_ARCHITECTURE = {"num_layers": 2, "num_heads": 2, "hidden_dim": 32, "intermediate_dim": 64,
                     "max_sequence_length": 64}
WORD_PIECE_RESERVED = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def save_distil_bert_preset(folder: Path, texts: list[str], vocabulary_size: int = 400, seed: int = 0,
                            sequence_length: int = 32, **architecture) -> Path:
    """A DistilBERT-family preset: a WordPiece vocabulary trained on texts, random weights (seeded)."""
    keras_hub = import_keras_hub()
    keras.utils.set_random_seed(seed)
    vocabulary = keras_hub.tokenizers.compute_word_piece_vocabulary(
        tf.data.Dataset.from_tensor_slices(texts), vocabulary_size=vocabulary_size,
        lowercase=False, reserved_tokens=WORD_PIECE_RESERVED)
    tokenizer = keras_hub.models.DistilBertTokenizer(vocabulary=vocabulary)
    preprocessor = keras_hub.models.DistilBertTextClassifierPreprocessor(tokenizer, sequence_length=sequence_length)
    backbone = keras_hub.models.DistilBertBackbone(vocabulary_size=len(vocabulary),
                                                   **{**TINY_ARCHITECTURE, **architecture})
    # KerasHub's own preset saver: the folder is what a downloaded preset looks like.
    backbone.save_to_preset(str(folder))
    preprocessor.save_to_preset(str(folder))
    return folder


def save_xlm_roberta_preset(folder: Path, texts: list[str], vocabulary_size: int = 40, seed: int = 0,
                            sequence_length: int = 32, **architecture) -> Path:
    """An XLM-RoBERTa-family preset: a SentencePiece model trained on texts, random weights (seeded)."""
    import sentencepiece  # noqa: PLC0415 (a KerasHub dependency, needed only for this family)

    keras_hub = import_keras_hub()
    keras.utils.set_random_seed(seed)
    proto = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=proto, vocab_size=vocabulary_size, model_type="unigram",
        pad_id=0, unk_id=1, bos_id=2, eos_id=3, pad_piece="<pad>", unk_piece="<unk>", bos_piece="<s>",
        eos_piece="</s>", user_defined_symbols="[MASK]", minloglevel=2)
    tokenizer = keras_hub.models.XLMRobertaTokenizer(proto=proto.getvalue())
    preprocessor = keras_hub.models.XLMRobertaTextClassifierPreprocessor(tokenizer, sequence_length=sequence_length)
    backbone = keras_hub.models.XLMRobertaBackbone(vocabulary_size=tokenizer.vocabulary_size(),
                                                   **{**TINY_ARCHITECTURE, **architecture})
    backbone.save_to_preset(str(folder))
    preprocessor.save_to_preset(str(folder))
    return folder
