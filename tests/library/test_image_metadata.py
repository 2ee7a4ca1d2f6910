"""Image metadata readers on files the tests write: A1111, ComfyUI, InvokeAI, NovelAI, Draw Things.

Covers BAD_INPUTS.md items 9, 10 and 27-30 (metadata); the test names carry the item number.
"""

from __future__ import annotations

import io
import json
import struct
import tempfile
import tracemalloc
import warnings
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile, PngImagePlugin

from desktop.core.errors import UserInputError
from desktop.core.infotext import format_infotext
from desktop.library.image_metadata import (
    RAW_TEXT_LIMIT,
    XMP_KEY,
    ImageFileError,
    ImageMetadata,
    a1111_sampler_name,
    decode_user_comment,
    image_format,
    metadata_from_texts,
    read_image_metadata,
    sniff_image_format,
)
from desktop.library.outputs import save_png
from tests.core.test_infotext import multi_line_text, params_dict

INFOTEXT = (
    "a cat, (red hat:1.2), 猫\nNegative prompt: blurry, lowres\n"
    "Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1234, Size: 512x768, "
    'Model hash: 0123456789, Model: dreamshaper_8, Lora hashes: "cat: 0123abcd4567", Version: v1.10.1'
)
INFOTEXT_PARAMS = (
    ("Steps", "20"),
    ("Sampler", "DPM++ 2M"),
    ("Schedule type", "Karras"),
    ("CFG scale", "7"),
    ("Seed", "1234"),
    ("Size", "512x768"),
    ("Model hash", "0123456789"),
    ("Model", "dreamshaper_8"),
    ("Lora hashes", "cat: 0123abcd4567"),
    ("Version", "v1.10.1"),
)


# --- writing sample files ------------------------------------------------------------------------


def _image(size: tuple[int, int] = (24, 16)) -> Image.Image:
    return Image.new("RGB", size, (200, 30, 30))


def write_png(path: Path, texts: dict[str, str] | None = None, *, zip_text: bool = False, size=(24, 16)) -> Path:
    info = PngImagePlugin.PngInfo()
    for key, text in (texts or {}).items():
        info.add_text(key, text, zip=zip_text)
    _image(size).save(path, "PNG", pnginfo=info)
    return path


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(*chunks: bytes, width: int = 4, height: int = 4) -> bytes:
    """A PNG made by hand: IHDR (any declared size), the given chunks, a tiny IDAT, IEND."""
    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    pixels = chunk(b"IDAT", zlib.compress(b"\0" * 13))
    return b"\x89PNG\r\n\x1a\n" + header + b"".join(chunks) + pixels + chunk(b"IEND", b"")


def user_comment_exif(comment: bytes, *, little_endian: bool = False) -> Image.Exif:
    """EXIF with a UserComment, as A1111 writes it through piexif (or an Intel-order block)."""
    exif = Image.Exif()
    if little_endian:
        exif.endian = "<"
    exif.get_ifd(0x8769)[0x9286] = comment
    return exif


def a1111_comment(text: str) -> bytes:
    return b"UNICODE\0" + text.encode("utf-16-be")


def write_with_exif(path: Path, exif: Image.Exif, container: str) -> Path:
    _image().save(path, container, exif=exif)
    return path


# --- the ImageMetadata value -------------------------------------------------------------------


def test_image_metadata_found_param_and_infotext():
    empty = ImageMetadata(width=5, height=6)
    assert not empty.found
    assert empty.param("Seed", "-1") == "-1"
    assert empty.infotext() == ""
    metadata = ImageMetadata("a1111", "a cat", "dog", (("Steps", "20"), ("Seed", "3"), ("Size", "8x8")))
    assert metadata.found
    assert metadata.param("Seed") == "3"
    assert metadata.infotext() == "a cat\nNegative prompt: dog\nSteps: 20, Seed: 3, Size: 8x8"
    with pytest.raises(AttributeError):
        metadata.prompt = "changed"  # frozen


def test_image_file_error_is_a_user_input_error():
    assert issubclass(ImageFileError, UserInputError)
    assert ImageFileError.code == "image_file"


# --- AUTOMATIC1111 -----------------------------------------------------------------------------


def test_png_saved_by_the_app_reads_back_as_a1111(tmp_path):
    path = save_png(_image((40, 24)), INFOTEXT, tmp_path, seed=1234)
    metadata = read_image_metadata(path)
    assert metadata.source == "a1111"
    assert metadata.prompt == "a cat, (red hat:1.2), 猫"
    assert metadata.negative_prompt == "blurry, lowres"
    assert metadata.params == INFOTEXT_PARAMS
    assert metadata.raw == INFOTEXT
    assert (metadata.width, metadata.height) == (40, 24)
    assert metadata.infotext() == INFOTEXT


@pytest.mark.parametrize(
    "text",
    ["latin-1 text: café\nSteps: 20, Seed: 1, Size: 8x8", "中文 prompt\nSteps: 20, Seed: 1, Size: 8x8"],
    ids=["zTXt", "compressed iTXt"],
)
def test_compressed_text_chunks_are_read(tmp_path, text):
    # Pillow writes zTXt for Latin-1 text and a compressed iTXt for anything else when zip=True.
    metadata = read_image_metadata(write_png(tmp_path / "z.png", {"parameters": text}, zip_text=True))
    assert metadata.source == "a1111"
    assert metadata.infotext() == text


def test_parameters_in_an_uncompressed_itxt_chunk(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_itxt("parameters", "a dog 🐕\nSteps: 5, Seed: 7, Size: 8x8", lang="en", tkey="Parameters")
    path = tmp_path / "i.png"
    _image().save(path, "PNG", pnginfo=info)
    metadata = read_image_metadata(path)
    assert (metadata.prompt, metadata.param("Seed")) == ("a dog 🐕", "7")


def test_jpeg_exif_user_comment_written_the_way_a1111_writes_it(tmp_path):
    """BAD_INPUTS 29: JPEG EXIF UserComment, "UNICODE" + UTF-16BE in a big-endian block (piexif)."""
    path = write_with_exif(tmp_path / "a.jpg", user_comment_exif(a1111_comment(INFOTEXT)), "JPEG")
    metadata = read_image_metadata(path)
    assert metadata.source == "a1111"
    assert metadata.params == INFOTEXT_PARAMS
    assert metadata.infotext() == INFOTEXT
    assert (metadata.width, metadata.height) == (24, 16)


def test_webp_exif_user_comment(tmp_path):
    """BAD_INPUTS 29: WebP EXIF UserComment (A1111 keeps the "Exif\\0\\0" header inside the chunk too)."""
    path = write_with_exif(tmp_path / "a.webp", user_comment_exif(a1111_comment(INFOTEXT)), "WEBP")
    metadata = read_image_metadata(path)
    assert metadata.source == "a1111"
    assert metadata.infotext() == INFOTEXT
    assert (metadata.width, metadata.height) == (24, 16)


def test_user_comment_in_a_little_endian_exif_block_is_little_endian_utf16(tmp_path):
    """BAD_INPUTS 29: exiftool and Windows write UNICODE text in the block's (Intel) byte order."""
    comment = b"UNICODE\0" + INFOTEXT.encode("utf-16-le")
    path = write_with_exif(tmp_path / "le.jpg", user_comment_exif(comment, little_endian=True), "JPEG")
    assert read_image_metadata(path).infotext() == INFOTEXT


@pytest.mark.parametrize(
    ("comment", "little_endian", "expected"),
    [
        (b"UNICODE\0" + "猫 cat".encode("utf-16-be"), False, "猫 cat"),
        (b"UNICODE\0" + "猫 cat".encode("utf-16-le"), True, "猫 cat"),
        (b"UNICODE\0\xfe\xff" + "猫 cat".encode("utf-16-be"), True, "猫 cat"),  # a BOM wins
        (b"UNICODE\0\xff\xfe" + "猫 cat".encode("utf-16-le"), False, "猫 cat"),
        (b"UNICODE\0" + "a cat".encode("utf-16-be") + b"\0\0\0\0", False, "a cat"),  # NUL padding
        (b"UNICODE\0" + "a cat".encode("utf-16-be") + b"\xd8", False, "a cat\ufffd"),  # odd length
        (b"ASCII\0\0\0a cat", False, "a cat"),
        (b"ASCII\0\0\0" + "café".encode(), False, "café"),  # UTF-8 under "ASCII", as A1111 reads it
        (b"\0" * 8 + b"a cat", False, "a cat"),
        (b"a cat, no character code", False, "a cat, no character code"),
        (b"\xff\xfe\xfa not utf-8", False, "\ufffd\ufffd\ufffd not utf-8"),
        ("already text\0", False, "already text"),
    ],
)
def test_decode_user_comment(comment, little_endian, expected):
    assert decode_user_comment(comment, little_endian=little_endian) == expected


def test_last_line_with_fewer_than_three_pairs_is_part_of_the_prompt(tmp_path):
    """BAD_INPUTS 28: A1111 reads a last line with < 3 "key: value" pairs as prompt text."""
    text = "a portrait\nNegative prompt: ugly\nstyle: oil, mood: calm"
    metadata = read_image_metadata(write_png(tmp_path / "p.png", {"parameters": text}))
    assert metadata.source == "a1111"
    assert metadata.negative_prompt == "ugly\nstyle: oil, mood: calm"
    assert metadata.params == ()


def test_html_in_parameters_is_kept_literally(tmp_path):
    """BAD_INPUTS 9: markup in metadata is text, never interpreted or escaped here."""
    prompt = '<img src=x onerror="alert(1)"> <a href="https://evil.example">click</a> &amp;'
    text = format_infotext(prompt, "<script>x()</script>", {"Steps": 20, "Seed": 1, "Model": "<b>m</b>"})
    metadata = read_image_metadata(write_png(tmp_path / "h.png", {"parameters": text}))
    assert metadata.prompt == prompt
    assert metadata.negative_prompt == "<script>x()</script>"
    assert metadata.param("Model") == "<b>m</b>"


def test_invalid_utf8_in_itxt_is_decoded_with_replacement_characters(tmp_path):
    """BAD_INPUTS 30: broken text encoding gives replacement characters, not an error."""
    data = b"parameters\0\0\0\0\0" + b"a \xff\xfe cat\nSteps: 1, Seed: 2, Size: 4x4"
    path = tmp_path / "u.png"
    path.write_bytes(png_bytes(chunk(b"iTXt", data)))
    metadata = read_image_metadata(path)
    assert metadata.prompt == "a \ufffd\ufffd cat"
    assert metadata.param("Seed") == "2"


def test_a_prompt_starting_with_a_brace_is_still_a1111_text(tmp_path):
    text = "{masterpiece}, {{best quality}}, 1girl\nSteps: 28, Seed: 5, Size: 512x768"
    metadata = read_image_metadata(write_png(tmp_path / "b.png", {"parameters": text}))
    assert (metadata.source, metadata.prompt) == ("a1111", "{masterpiece}, {{best quality}}, 1girl")


def test_files_are_recognised_by_content_not_by_name(tmp_path):
    png_named_jpg = write_png(tmp_path / "actually_png.jpg", {"parameters": INFOTEXT})
    jpeg_without_suffix = write_with_exif(tmp_path / "download", user_comment_exif(a1111_comment(INFOTEXT)), "JPEG")
    assert image_format(png_named_jpg) == "png"
    assert image_format(jpeg_without_suffix) == "jpeg"
    assert read_image_metadata(png_named_jpg).infotext() == INFOTEXT
    assert read_image_metadata(jpeg_without_suffix).infotext() == INFOTEXT
    assert image_format(tmp_path / "missing.png") is None
    assert sniff_image_format(b"RIFF\0\0\0\0WAVE") is None


# --- round trips through real files (BAD_INPUTS 27) ----------------------------------------------

def _storable(text: str) -> bool:
    """Lone surrogates are not Unicode scalar values: no file encoding can hold them."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_ROUND_TRIP_SETTINGS = settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


@_ROUND_TRIP_SETTINGS
@given(prompt=multi_line_text, negative_prompt=multi_line_text, params=params_dict)
def test_round_trip_through_a_png_saved_by_save_png(prompt, negative_prompt, params):
    """BAD_INPUTS 27: newlines, "Negative prompt:" inside text, quotes, colons, commas, Chinese, emoji."""
    text = format_infotext(prompt, negative_prompt, params)
    assume(_storable(text))
    with tempfile.TemporaryDirectory() as folder:
        path = save_png(_image((8, 8)), text, Path(folder), seed=1)
        metadata = read_image_metadata(path)
    assert (metadata.prompt, metadata.negative_prompt, dict(metadata.params)) == (prompt, negative_prompt, params)
    assert [key for key, _ in metadata.params] == list(params)


@pytest.mark.parametrize("container", ["JPEG", "WEBP"])
@_ROUND_TRIP_SETTINGS
@given(prompt=multi_line_text, negative_prompt=multi_line_text, params=params_dict)
def test_round_trip_through_exif_user_comment(container, prompt, negative_prompt, params):
    """BAD_INPUTS 27/29: the same through a JPEG and a WebP UserComment as A1111 writes them."""
    text = format_infotext(prompt, negative_prompt, params)
    assume(_storable(text))
    assume(not text.endswith("\0"))  # trailing NULs are padding in a UserComment, and dropped
    buffer = io.BytesIO()
    _image((8, 8)).save(buffer, container, exif=user_comment_exif(a1111_comment(text)))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "image"
        path.write_bytes(buffer.getvalue())
        metadata = read_image_metadata(path)
    assert (metadata.prompt, metadata.negative_prompt, dict(metadata.params)) == (prompt, negative_prompt, params)


# --- ComfyUI -----------------------------------------------------------------------------------

COMFY_PROMPT = {
    "3": {
        "class_type": "KSampler",
        "inputs": {
            "seed": 156680208700286,
            "steps": 25,
            "cfg": 7.5,
            "sampler_name": "dpmpp_2m",
            "scheduler": "karras",
            "denoise": 1.0,
            "model": ["4", 0],
            "positive": ["6", 0],
            "negative": ["7", 0],
            "latent_image": ["5", 0],
        },
    },
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "SDXL\\juggernautXL_v9.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 832, "height": 1216, "batch_size": 1}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red fox, snow, 狐狸", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry, lowres", "clip": ["4", 1]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}},
}
COMFY_PARAMS = (
    ("Steps", "25"),
    ("Sampler", "DPM++ 2M"),
    ("Schedule type", "Karras"),
    ("CFG scale", "7.5"),
    ("Seed", "156680208700286"),
    ("Size", "832x1216"),
    ("Model", "juggernautXL_v9"),
)
# The same graph as the editor saves it: widget values in order, links in a table.
COMFY_WORKFLOW = {
    "last_node_id": 9,
    "nodes": [
        {
            "id": 3,
            "type": "KSampler",
            "mode": 0,
            "inputs": [
                {"name": "model", "type": "MODEL", "link": 1},
                {"name": "positive", "type": "CONDITIONING", "link": 4},
                {"name": "negative", "type": "CONDITIONING", "link": 6},
                {"name": "latent_image", "type": "LATENT", "link": 2},
            ],
            "widgets_values": [156680208700286, "randomize", 25, 7.5, "dpmpp_2m", "karras", 1],
        },
        {"id": 4, "type": "CheckpointLoaderSimple", "widgets_values": ["SDXL\\juggernautXL_v9.safetensors"]},
        {"id": 5, "type": "EmptyLatentImage", "widgets_values": [832, 1216, 1]},
        {"id": 6, "type": "CLIPTextEncode", "inputs": [{"name": "clip", "link": 3}], "widgets_values": ["a red fox, snow, 狐狸"]},
        {"id": 7, "type": "CLIPTextEncode", "inputs": [{"name": "clip", "link": 5}], "widgets_values": ["blurry, lowres"]},
        {"id": 10, "type": "Note", "widgets_values": ["just a note"]},
    ],
    "links": [
        [1, 4, 0, 3, 0, "MODEL"],
        [2, 5, 0, 3, 3, "LATENT"],
        [3, 4, 1, 6, 0, "CLIP"],
        [4, 6, 0, 3, 1, "CONDITIONING"],
        [5, 4, 1, 7, 0, "CLIP"],
        [6, 7, 0, 3, 2, "CONDITIONING"],
    ],
}


def comfy(graph: dict) -> ImageMetadata:
    return metadata_from_texts({"prompt": json.dumps(graph)}, 64, 48)


def test_comfyui_png_with_prompt_and_workflow(tmp_path):
    """BAD_INPUTS 29: ComfyUI's API graph gives the texts and the sampler settings in A1111 names."""
    prompt_json = json.dumps(COMFY_PROMPT)
    path = write_png(tmp_path / "ComfyUI_00001_.png", {"prompt": prompt_json, "workflow": json.dumps(COMFY_WORKFLOW)})
    metadata = read_image_metadata(path)
    assert metadata.source == "comfyui"
    assert metadata.prompt == "a red fox, snow, 狐狸"
    assert metadata.negative_prompt == "blurry, lowres"
    assert metadata.params == COMFY_PARAMS
    assert metadata.raw == prompt_json
    assert metadata.infotext().endswith(
        "Steps: 25, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7.5, Seed: 156680208700286, "
        "Size: 832x1216, Model: juggernautXL_v9"
    )


def test_comfyui_workflow_alone_gives_the_same(tmp_path):
    path = write_png(tmp_path / "w.png", {"workflow": json.dumps(COMFY_WORKFLOW)})
    metadata = read_image_metadata(path)
    assert (metadata.source, metadata.prompt, metadata.negative_prompt) == ("comfyui", "a red fox, snow, 狐狸", "blurry, lowres")
    assert metadata.params == COMFY_PARAMS


def test_comfyui_workflow_with_dict_links_and_a_primitive_seed():
    workflow = json.loads(json.dumps(COMFY_WORKFLOW))
    workflow["links"] = [
        {"id": link[0], "origin_id": link[1], "origin_slot": link[2], "target_id": link[3]} for link in workflow["links"]
    ]
    sampler = workflow["nodes"][0]
    sampler["widgets_values"] = {"steps": 30, "cfg": 5, "sampler_name": "euler", "scheduler": "normal"}  # newer nodes
    sampler["inputs"].append({"name": "seed", "widget": {"name": "seed"}, "link": 7})
    workflow["nodes"].append({"id": 11, "type": "PrimitiveNode", "widgets_values": [42, "fixed"]})
    workflow["links"].append({"id": 7, "origin_id": 11, "origin_slot": 0})
    metadata = metadata_from_texts({"workflow": json.dumps(workflow)})
    assert metadata.param("Seed") == "42"
    assert (metadata.param("Steps"), metadata.param("Sampler"), metadata.param("Schedule type")) == ("30", "Euler", "Normal")


def test_comfyui_webp_keeps_the_graphs_in_exif_model_and_make(tmp_path):
    exif = Image.Exif()
    exif[0x0110] = "prompt:" + json.dumps(COMFY_PROMPT)
    exif[0x010F] = "workflow:" + json.dumps(COMFY_WORKFLOW)
    metadata = read_image_metadata(write_with_exif(tmp_path / "c.webp", exif, "WEBP"))
    assert metadata.source == "comfyui"
    assert metadata.params == COMFY_PARAMS


def test_comfyui_graph_in_a_jpeg_user_comment(tmp_path):
    comment = b"UNICODE\0" + json.dumps(COMFY_PROMPT).encode("utf-16-be")
    metadata = read_image_metadata(write_with_exif(tmp_path / "c.jpg", user_comment_exif(comment), "JPEG"))
    assert (metadata.source, metadata.params) == ("comfyui", COMFY_PARAMS)


@pytest.mark.parametrize(
    ("sampler", "scheduler", "expected"),
    [
        ("euler", "normal", ("Euler", "Normal")),
        ("euler_ancestral", "simple", ("Euler a", "Simple")),
        ("dpmpp_2m", "karras", ("DPM++ 2M", "Karras")),
        ("dpmpp_sde", "exponential", ("DPM++ SDE", "Exponential")),
        ("dpmpp_sde_gpu", "karras", ("DPM++ SDE", "Karras")),
        ("dpmpp_2m_sde", "sgm_uniform", ("DPM++ 2M SDE", "SGM Uniform")),
        ("dpmpp_3m_sde_gpu", "beta", ("DPM++ 3M SDE", "Beta")),
        ("dpmpp_2s_ancestral", "ddim_uniform", ("DPM++ 2S a", "DDIM")),
        ("heun", "kl_optimal", ("Heun", "KL Optimal")),
        ("lms", "", ("LMS", "")),
        ("ddim", "", ("DDIM", "")),
        ("uni_pc", "", ("UniPC", "")),
        ("lcm", "sgm_uniform", ("LCM", "SGM Uniform")),
        ("dpm_2_ancestral", "", ("DPM2 a", "")),
        ("uni_pc_bh2", "linear_quadratic", ("uni_pc_bh2", "linear_quadratic")),  # no clear A1111 name: kept
        ("res_multistep", "", ("res_multistep", "")),
        # Other tools' spellings.
        ("k_euler_ancestral", "", ("Euler a", "")),  # NovelAI
        ("k_dpmpp_2s_ancestral", "", ("DPM++ 2S a", "")),
        ("dpmpp_2m_k", "", ("DPM++ 2M", "Karras")),  # InvokeAI
        ("kdpm_2_a", "", ("DPM2 a", "")),
        ("pndm", "", ("PLMS", "")),
        ("DPM++ 2M Karras", "", ("DPM++ 2M", "Karras")),  # Draw Things
        ("Euler A", "", ("Euler a", "")),
        ("DPM++ SDE AYS", "", ("DPM++ SDE", "Align Your Steps")),
        ("Euler A Trailing", "", ("Euler A Trailing", "")),
        ("DPM++ 2M", "Karras", ("DPM++ 2M", "Karras")),  # already A1111's
    ],
)
def test_sampler_names_map_to_a1111_names(sampler, scheduler, expected):
    assert a1111_sampler_name(sampler, scheduler) == expected


def test_comfyui_text_through_primitive_string_and_reroute_nodes():
    graph = json.loads(json.dumps(COMFY_PROMPT))
    graph["6"]["inputs"]["text"] = ["20", 0]
    graph["20"] = {"class_type": "Reroute", "inputs": {"": ["21", 0]}}
    graph["21"] = {"class_type": "PrimitiveStringMultiline", "inputs": {"value": "from a string node"}}
    graph["3"]["inputs"]["seed"] = ["22", 0]
    graph["22"] = {"class_type": "Seed (rgthree)", "inputs": {"seed": 77}}
    graph["3"]["inputs"]["negative"] = ["23", 0]
    graph["23"] = {"class_type": "Reroute", "inputs": {"": ["7", 0]}}
    metadata = comfy(graph)
    assert (metadata.prompt, metadata.negative_prompt, metadata.param("Seed")) == (
        "from a string node",
        "blurry, lowres",
        "77",
    )


def test_comfyui_conditioning_through_controlnet_and_combine_and_model_through_lora():
    graph = json.loads(json.dumps(COMFY_PROMPT))
    graph["3"]["inputs"].update(positive=["30", 0], negative=["30", 1], model=["32", 0])
    graph["30"] = {
        "class_type": "ControlNetApplyAdvanced",
        "inputs": {"positive": ["31", 0], "negative": ["7", 0], "control_net": ["40", 0], "image": ["41", 0], "strength": 0.8},
    }
    graph["31"] = {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["6", 0], "conditioning_2": ["33", 0]}}
    graph["33"] = {"class_type": "CLIPTextEncode", "inputs": {"text": "second part", "clip": ["4", 1]}}
    graph["32"] = {"class_type": "LoraLoader", "inputs": {"lora_name": "fox.safetensors", "model": ["4", 0], "clip": ["4", 1]}}
    graph["4"]["inputs"]["ckpt_name"] = "models/dreamshaper_8.ckpt"
    metadata = comfy(graph)
    assert metadata.prompt == "a red fox, snow, 狐狸\nsecond part"
    assert metadata.negative_prompt == "blurry, lowres"
    assert metadata.param("Model") == "dreamshaper_8"


def test_comfyui_sampler_custom_advanced_and_sdxl_encoder():
    graph = {
        "10": {
            "class_type": "SamplerCustomAdvanced",
            "inputs": {"noise": ["11", 0], "guider": ["12", 0], "sampler": ["13", 0], "sigmas": ["14", 0], "latent_image": ["15", 0]},
        },
        "11": {"class_type": "RandomNoise", "inputs": {"noise_seed": 99}},
        "12": {"class_type": "CFGGuider", "inputs": {"cfg": 4, "model": ["16", 0], "positive": ["17", 0], "negative": ["18", 0]}},
        "13": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler_ancestral"}},
        "14": {"class_type": "KarrasScheduler", "inputs": {"steps": 12, "sigma_max": 14.6, "sigma_min": 0.03, "rho": 7}},
        "15": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 1024, "height": 1024, "batch_size": 1}},
        "16": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux1-dev.sft", "weight_dtype": "default"}},
        "17": {"class_type": "CLIPTextEncodeSDXL", "inputs": {"text_g": "a lighthouse", "text_l": "a lighthouse"}},
        "18": {"class_type": "CLIPTextEncode", "inputs": {"text": ""}},
    }
    metadata = comfy(graph)
    assert metadata.prompt == "a lighthouse"
    assert metadata.negative_prompt == ""
    assert metadata.params == (
        ("Steps", "12"),
        ("Sampler", "Euler a"),
        ("Schedule type", "Karras"),
        ("CFG scale", "4"),
        ("Seed", "99"),
        ("Size", "1024x1024"),
        ("Model", "flux1-dev"),
    )


def test_comfyui_hires_pass_does_not_hide_the_first_pass():
    graph = json.loads(json.dumps(COMFY_PROMPT))
    # A second sampler refining the upscaled result, listed first (lower id).
    graph["1"] = {
        "class_type": "KSampler",
        "inputs": {
            **graph["3"]["inputs"],
            "steps": 10,
            "denoise": 0.45,
            "latent_image": ["2", 0],
        },
    }
    graph["2"] = {"class_type": "LatentUpscaleBy", "inputs": {"samples": ["3", 0], "scale_by": 1.5}}
    metadata = comfy(graph)
    assert metadata.param("Steps") == "25"
    assert metadata.param("Denoising strength") == ""


def test_comfyui_img2img_writes_denoising_strength_and_the_image_size():
    graph = json.loads(json.dumps(COMFY_PROMPT))
    graph["3"]["inputs"].update(denoise=0.6, latent_image=["50", 0])
    graph["50"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["51", 0], "vae": ["4", 2]}}
    metadata = comfy(graph)
    assert metadata.param("Denoising strength") == "0.6"
    assert metadata.param("Size") == "64x48"  # the image's own size when no empty latent says otherwise


def _sampler(**inputs: object) -> dict:
    return {"class_type": "KSampler", "inputs": inputs}


WRONG_SHAPE_GRAPHS = {
    "self-links": {"1": _sampler(positive=["1", 0], negative=["1", 0], model=["1", 0])},
    "cycle": {
        "1": _sampler(positive=["2", 0], seed=["2", 0], steps=["3", 0]),
        "2": {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["3", 0], "seed": ["3", 0]}},
        "3": {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["2", 0], "seed": ["2", 0]}},
    },
    "missing link target": {"1": _sampler(positive=["404", 0], seed=["404", 0])},
    "inputs a list": {"1": {"class_type": "KSampler", "inputs": ["positive", "negative"]}},
    "odd links": {"1": _sampler(positive=[["6"], 0], steps=[1, 2, 3], model=["1", True])},
    "numbers as strings": {"1": _sampler(steps="20", cfg="7.5", seed="12")},
    "odd numbers": {"1": _sampler(steps=True, cfg=None, seed=1e400)},
    "wrong node shapes": {"1": {"class_type": 5, "inputs": {}}, "2": [], "3": "x", "4": {"class_type": "KSampler"}},
    "huge and negative sizes": {
        "1": _sampler(sampler_name={"x": 1}, scheduler=[], latent_image=["2", 0]),
        "2": {"class_type": "EmptyLatentImage", "inputs": {"width": "9" * 5000, "height": -3}},
    },
}


@pytest.mark.parametrize("graph", list(WRONG_SHAPE_GRAPHS.values()), ids=list(WRONG_SHAPE_GRAPHS))
def test_comfyui_graphs_of_the_wrong_shape_never_raise(graph):
    """BAD_INPUTS 29/30: valid JSON of the wrong shape (lists, strings, cycles, dangling links)."""
    metadata = comfy(graph)
    assert metadata.source == "comfyui"
    assert all(isinstance(key, str) and isinstance(value, str) and value for key, value in metadata.params)


def test_comfyui_numbers_as_strings_are_kept():
    metadata = comfy({"1": {"class_type": "KSampler", "inputs": {"steps": "20", "cfg": " 7.5 ", "seed": "12"}}})
    assert metadata.params == (("Steps", "20"), ("CFG scale", "7.5"), ("Seed", "12"), ("Size", "64x48"))


# Hypothesis: graphs of known node types wired at random, and JSON of any shape under every key.
_NODE_IDS = [str(number) for number in range(1, 7)]
_INPUT_NAMES = [
    "positive", "negative", "conditioning", "conditioning_1", "model", "latent_image", "text", "text_g", "seed",
    "noise_seed", "steps", "cfg", "sampler_name", "scheduler", "denoise", "ckpt_name", "width", "height", "value",
    "guider", "sampler", "sigmas", "noise", "",
]  # fmt: skip
_CLASS_TYPES = [
    "KSampler", "KSamplerAdvanced", "SamplerCustom", "SamplerCustomAdvanced", "CLIPTextEncode", "CFGGuider",
    "BasicGuider", "KSamplerSelect", "BasicScheduler", "KarrasScheduler", "RandomNoise", "EmptyLatentImage",
    "CheckpointLoaderSimple", "LoraLoader", "ConditioningCombine", "Reroute", "PrimitiveNode", "Unknown",
]  # fmt: skip
json_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8))
json_value = st.recursive(
    json_scalar,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.text(max_size=6), children, max_size=4)),
    max_leaves=12,
)
link = st.tuples(st.sampled_from([*_NODE_IDS, "404"]), st.integers(-1, 3)).map(list)
graph_strategy = st.dictionaries(
    st.sampled_from(_NODE_IDS),
    st.fixed_dictionaries(
        {
            "class_type": st.sampled_from(_CLASS_TYPES),
            "inputs": st.dictionaries(st.sampled_from(_INPUT_NAMES), st.one_of(link, link, json_value), max_size=8),
        }
    ),
    max_size=6,
)


def _well_formed(metadata: ImageMetadata) -> None:
    assert isinstance(metadata.prompt, str) and isinstance(metadata.negative_prompt, str)
    assert all(isinstance(key, str) and isinstance(value, str) for key, value in metadata.params)
    metadata.infotext()


@settings(max_examples=300, deadline=None, database=None)
@given(graph=graph_strategy)
def test_random_comfyui_graphs_never_raise(graph):
    """BAD_INPUTS 29/30: any wiring, including cycles and links to missing nodes."""
    _well_formed(comfy(graph))


def _workflow_from(graph: dict, links: list) -> dict:
    nodes = [
        {"id": int(node_id), "type": node["class_type"], "widgets_values": list(node["inputs"].values()),
         "inputs": [{"name": name, "link": number} for number, name in enumerate(node["inputs"])]}
        for node_id, node in graph.items()
    ]  # fmt: skip
    return {"nodes": nodes, "links": links}


@settings(max_examples=200, deadline=None, database=None)
@given(graph=graph_strategy, links=st.lists(st.one_of(st.lists(json_scalar, max_size=6), json_value), max_size=8))
def test_random_comfyui_workflows_never_raise(graph, links):
    _well_formed(metadata_from_texts({"workflow": json.dumps(_workflow_from(graph, links))}))


@settings(max_examples=300, deadline=None, database=None)
@given(
    key=st.sampled_from(["prompt", "workflow", "parameters", "invokeai_metadata", "sd-metadata", "Comment", XMP_KEY]),
    value=json_value,
)
def test_json_of_any_shape_under_any_key_never_raises(key, value):
    """BAD_INPUTS 30: lists instead of objects, numbers as strings, missing keys, nesting."""
    text = json.dumps(value)
    if key == XMP_KEY:
        text = _draw_things_xmp(text)
    _well_formed(metadata_from_texts({key: text, "Software": "NovelAI"}))


@pytest.mark.parametrize(
    "text",
    ["[" * 100_000 + "]" * 100_000, '{"a": ' * 50_000 + "1" + "}" * 50_000, '{"seed": ' + "9" * 10_000 + "}", "{not json", "null"],
    ids=["deep list", "deep object", "huge integer", "broken", "null"],
)
@pytest.mark.parametrize("key", ["prompt", "workflow", "invokeai_metadata", "Comment"])
def test_hostile_json_texts_never_raise(key, text):
    """BAD_INPUTS 30: JSON too deep for the parser, integers beyond Python's digit limit, garbage."""
    _well_formed(metadata_from_texts({key: text, "Software": "NovelAI"}))


# --- InvokeAI ------------------------------------------------------------------------------------


def test_invokeai_4_metadata(tmp_path):
    metadata_json = json.dumps(
        {
            "generation_mode": "txt2img",
            "positive_prompt": "a castle on a hill",
            "negative_prompt": "fog",
            "width": 1024,
            "height": 768,
            "seed": 3141592653,
            "rand_device": "cpu",
            "cfg_scale": 6.5,
            "steps": 30,
            "scheduler": "dpmpp_2m_k",
            "clip_skip": 1,
            "model": {"key": "abc", "hash": "blake3:00", "name": "Juggernaut XL v9", "base": "sdxl", "type": "main"},
            "vae": {"name": "sdxl-vae-fp16-fix"},
            "app_version": "4.2.4",
        }
    )
    path = write_png(tmp_path / "invoke.png", {"invokeai_metadata": metadata_json, "invokeai_graph": "{}"})
    metadata = read_image_metadata(path)
    assert (metadata.source, metadata.prompt, metadata.negative_prompt) == ("invokeai", "a castle on a hill", "fog")
    assert metadata.params == (
        ("Steps", "30"),
        ("Sampler", "DPM++ 2M"),
        ("Schedule type", "Karras"),
        ("CFG scale", "6.5"),
        ("Seed", "3141592653"),
        ("Size", "1024x768"),
        ("Model", "Juggernaut XL v9"),
        ("VAE", "sdxl-vae-fp16-fix"),
        ("Clip skip", "2"),
    )
    assert metadata.raw == metadata_json


def test_invokeai_3_model_name_and_img2img_strength():
    data = {"positive_prompt": "x", "model": {"model_name": "stable-diffusion-v1-5", "base_model": "sd-1"},
            "scheduler": "euler_a", "strength": 0.7, "seed": 1, "steps": 20}  # fmt: skip
    metadata = metadata_from_texts({"invokeai_metadata": json.dumps(data)})
    assert metadata.param("Model") == "stable-diffusion-v1-5"
    assert metadata.param("Sampler") == "Euler a"
    assert metadata.param("Denoising strength") == "0.7"


def test_invokeai_2_sd_metadata_and_dream():
    sd_metadata = {
        "model_weights": "stable-diffusion-1.5",
        "app_id": "invoke-ai/InvokeAI",
        "image": {"prompt": [{"prompt": "a cat [dog]", "weight": 1.0}], "steps": 50, "cfg_scale": 7.5, "seed": 42,
                  "width": 512, "height": 512, "sampler": "k_lms", "type": "txt2img"},
    }  # fmt: skip
    metadata = metadata_from_texts({"sd-metadata": json.dumps(sd_metadata)})
    assert (metadata.source, metadata.prompt) == ("invokeai", "a cat [dog]")
    assert metadata.params == (
        ("Steps", "50"), ("Sampler", "LMS"), ("CFG scale", "7.5"), ("Seed", "42"), ("Size", "512x512"),
        ("Model", "stable-diffusion-1.5"),
    )  # fmt: skip
    dream = metadata_from_texts({"Dream": '"a cat, on a mat" -s 50 -S 42 -W 512 -H 640 -C 7.5 -A k_euler_a'})
    assert (dream.source, dream.prompt) == ("invokeai", "a cat, on a mat")
    assert dream.params == (("Steps", "50"), ("Sampler", "Euler a"), ("CFG scale", "7.5"), ("Seed", "42"), ("Size", "512x640"))
    unquoted = metadata_from_texts({"Dream": "a cat -s 10 -S"})
    assert (unquoted.prompt, unquoted.params) == ("a cat", (("Steps", "10"),))


# --- NovelAI -------------------------------------------------------------------------------------


def test_novelai_png(tmp_path):
    comment = {
        "prompt": "1girl, {masterpiece}",
        "steps": 28,
        "height": 1216,
        "width": 832,
        "scale": 5.0,
        "uncond_scale": 1.0,
        "cfg_rescale": 0.0,
        "seed": 1234567,
        "n_samples": 1,
        "noise_schedule": "karras",
        "sampler": "k_euler_ancestral",
        "uc": "lowres, bad anatomy",
        "request_type": "PromptGenerateRequest",
    }
    texts = {
        "Title": "NovelAI generated image",
        "Description": "1girl, {masterpiece}",
        "Software": "NovelAI",
        "Source": "NovelAI Diffusion V4.5 4BDE2A90",
        "Generation time": "3.2",
        "Comment": json.dumps(comment),
    }
    metadata = read_image_metadata(write_png(tmp_path / "nai.png", texts, size=(83, 121)))
    assert (metadata.source, metadata.prompt, metadata.negative_prompt) == ("novelai", "1girl, {masterpiece}", "lowres, bad anatomy")
    assert metadata.params == (
        ("Steps", "28"),
        ("Sampler", "Euler a"),
        ("Schedule type", "Karras"),
        ("CFG scale", "5"),
        ("Seed", "1234567"),
        ("Size", "832x1216"),
        ("Model", "NovelAI Diffusion V4.5 4BDE2A90"),
    )


def test_novelai_v4_captions_and_native_schedule():
    comment = {"v4_prompt": {"caption": {"base_caption": "a fox"}}, "v4_negative_prompt": {"caption": {"base_caption": "blur"}},
               "sampler": "k_dpmpp_2m", "noise_schedule": "native"}  # fmt: skip
    metadata = metadata_from_texts({"Software": "NovelAI", "Comment": json.dumps(comment)}, 8, 8)
    assert (metadata.prompt, metadata.negative_prompt) == ("a fox", "blur")
    assert metadata.params == (("Sampler", "DPM++ 2M"), ("Size", "8x8"))


# --- Draw Things ---------------------------------------------------------------------------------


def _draw_things_xmp(user_comment: str, description: str = "", creator: str = "Draw Things") -> str:
    from xml.sax.saxutils import escape

    return f"""<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 6.0.0">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:exif="http://ns.adobe.com/exif/1.0/" xmlns:xmp="http://ns.adobe.com/xap/1.0/">
   <dc:description><rdf:Alt><rdf:li xml:lang="x-default">{escape(description)}</rdf:li></rdf:Alt></dc:description>
   <exif:UserComment><rdf:Alt><rdf:li xml:lang="x-default">{escape(user_comment)}</rdf:li></rdf:Alt></exif:UserComment>
   <xmp:CreatorTool>{escape(creator)}</xmp:CreatorTool>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>"""


DRAW_THINGS_JSON = {
    "c": "a koi pond, <lora:ink:0.6>",
    "uc": "text, watermark",
    "seed": 2915366530,
    "steps": 20,
    "scale": 4.5,
    "sampler": "DPM++ 2M Karras",
    "size": "768x1024",
    "model": "sd_xl_base_1.0_f16.ckpt",
    "strength": 1,
    "seed_mode": "Scale Alike",
    "lora": [{"file": "ink_lora_f16.ckpt", "weight": 0.6}],
}


def test_draw_things_xmp_in_a_png(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_itxt(XMP_KEY, _draw_things_xmp(json.dumps(DRAW_THINGS_JSON), "a koi pond\nSteps: 20"))
    path = tmp_path / "dt.png"
    _image().save(path, "PNG", pnginfo=info)
    metadata = read_image_metadata(path)
    assert (metadata.source, metadata.prompt, metadata.negative_prompt) == ("drawthings", "a koi pond, <lora:ink:0.6>", "text, watermark")
    assert metadata.params == (
        ("Steps", "20"),
        ("Sampler", "DPM++ 2M"),
        ("Schedule type", "Karras"),
        ("CFG scale", "4.5"),
        ("Seed", "2915366530"),
        ("Size", "768x1024"),
        ("Model", "sd_xl_base_1.0_f16"),
    )
    assert json.loads(metadata.raw) == DRAW_THINGS_JSON


def test_draw_things_description_only_and_other_xmp():
    description = "a koi pond\nNegative prompt: text\nSteps: 20, Sampler: Euler a, Seed: 5"
    by_draw_things = metadata_from_texts({XMP_KEY: _draw_things_xmp("not json", description)})
    assert (by_draw_things.source, by_draw_things.prompt, by_draw_things.param("Seed")) == ("drawthings", "a koi pond", "5")
    photoshop = metadata_from_texts({XMP_KEY: _draw_things_xmp("", "holiday photo", creator="Adobe Photoshop 25.0")})
    assert not photoshop.found
    assert "Adobe Photoshop" in photoshop.raw


def test_xmp_with_entity_declarations_is_not_parsed():
    """BAD_INPUTS 30: XMP never declares entities; a "billion laughs" packet is refused unparsed."""
    bomb = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
    bomb += _draw_things_xmp(json.dumps(DRAW_THINGS_JSON)).split("?>", 1)[1]
    assert not metadata_from_texts({XMP_KEY: bomb}).found
    assert not metadata_from_texts({XMP_KEY: "<x:xmpmeta broken"}).found


# --- no parameters -------------------------------------------------------------------------------


def test_image_without_parameters(tmp_path):
    metadata = read_image_metadata(write_png(tmp_path / "plain.png", size=(31, 17)))
    assert metadata == ImageMetadata(width=31, height=17)


def test_other_text_is_kept_for_show_raw(tmp_path):
    metadata = read_image_metadata(write_png(tmp_path / "gimp.png", {"Software": "GIMP 2.10", "Comment": "hello"}))
    assert not metadata.found
    assert metadata.raw == "Software: GIMP 2.10\nComment: hello"


def test_gif_and_tiff_give_their_size(tmp_path):
    _image((33, 21)).save(tmp_path / "a.gif", "GIF")
    _image((35, 22)).save(tmp_path / "a.tiff", "TIFF")
    assert read_image_metadata(tmp_path / "a.gif") == ImageMetadata(width=33, height=21)
    assert read_image_metadata(tmp_path / "a.tiff") == ImageMetadata(width=35, height=22)


def test_lossless_webp_and_plain_jpeg_give_their_size(tmp_path):
    _image((37, 23)).save(tmp_path / "a.webp", "WEBP", lossless=True)
    _image((39, 25)).save(tmp_path / "a.jpg", "JPEG")
    assert read_image_metadata(tmp_path / "a.webp") == ImageMetadata(width=37, height=23)
    assert read_image_metadata(tmp_path / "a.jpg") == ImageMetadata(width=39, height=25)


# --- files that are not images, or damaged (BAD_INPUTS 30) ---------------------------------------


def rejected(path: Path) -> ImageFileError:
    with pytest.raises(ImageFileError) as caught:
        read_image_metadata(path)
    error = caught.value
    assert path.name in error.message, "the message names the file"
    assert "\n" not in error.message
    assert error.details["path"] == str(path)
    return error


def test_zero_byte_file_is_not_an_image(tmp_path):
    """BAD_INPUTS 30: an empty file."""
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    assert "empty" in rejected(path).message


@pytest.mark.parametrize("content", [b"hello, not an image", b"\x89PN", b"{}", b"\0" * 100])
def test_other_content_is_not_an_image(tmp_path, content):
    """BAD_INPUTS 30: text, a cut signature, zeros: judged by content, named .png or not."""
    path = tmp_path / "fake.png"
    path.write_bytes(content)
    assert rejected(path).details["reason"] == "not_an_image"


def test_missing_file_and_folder(tmp_path):
    assert "does not exist" in rejected(tmp_path / "gone.png").message
    folder = tmp_path / "folder.png"
    folder.mkdir()
    assert "folder" in rejected(folder).message


def _png_with_parameters() -> bytes:
    return png_bytes(chunk(b"tEXt", b"parameters\0a cat\nSteps: 1, Seed: 2, Size: 4x4"))


def test_png_whose_text_chunk_fails_its_checksum(tmp_path):
    """BAD_INPUTS 30: bad CRC."""
    data = bytearray(_png_with_parameters())
    data[data.index(b"a cat")] ^= 0x01
    path = tmp_path / "crc.png"
    path.write_bytes(bytes(data))
    error = rejected(path)
    assert "damaged PNG" in error.message and "tEXt" in error.message and "checksum" in error.message


def test_png_whose_header_fails_its_checksum(tmp_path):
    data = bytearray(_png_with_parameters())
    data[16] ^= 0x01  # inside IHDR's width
    path = tmp_path / "ihdr.png"
    path.write_bytes(bytes(data))
    assert "IHDR" in rejected(path).message


@pytest.mark.parametrize("cut", [12, 30, -20, -5])
def test_truncated_png(tmp_path, cut):
    """BAD_INPUTS 30: a PNG cut short anywhere (in a header, in text, in pixel data, before IEND)."""
    path = tmp_path / "cut.png"
    path.write_bytes(_png_with_parameters()[:cut])
    assert "truncated" in rejected(path).message


def test_png_without_a_header_chunk_first(tmp_path):
    path = tmp_path / "noihdr.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"tEXt", b"a\0b") + chunk(b"IEND", b""))
    assert "IHDR" in rejected(path).message


def test_png_with_an_invalid_chunk_type(tmp_path):
    data = _png_with_parameters().replace(b"tEXt", b"t\0Xt", 1)
    path = tmp_path / "type.png"
    path.write_bytes(data)
    assert "invalid type" in rejected(path).message


def test_truncated_jpeg_and_webp(tmp_path):
    """BAD_INPUTS 30: cut before the image data starts."""
    buffer = io.BytesIO()
    _image().save(buffer, "JPEG", exif=user_comment_exif(a1111_comment(INFOTEXT)))
    (tmp_path / "cut.jpg").write_bytes(buffer.getvalue()[:100])
    assert "damaged JPEG" in rejected(tmp_path / "cut.jpg").message
    buffer = io.BytesIO()
    _image().save(buffer, "WEBP", exif=user_comment_exif(a1111_comment(INFOTEXT)))
    (tmp_path / "cut.webp").write_bytes(buffer.getvalue()[:40])
    assert "damaged WebP" in rejected(tmp_path / "cut.webp").message


def test_jpeg_without_a_frame_header(tmp_path):
    path = tmp_path / "nosof.jpg"
    path.write_bytes(b"\xff\xd8\xff\xfe\x00\x05abc\xff\xda\x00\x02" + b"\x00" * 50)
    assert "frame header" in rejected(path).message


def test_damaged_exif_loses_its_text_not_the_image(tmp_path):
    buffer = io.BytesIO()
    _image().save(buffer, "JPEG", exif=b"Exif\0\0garbage that is not TIFF at all")
    path = tmp_path / "exif.jpg"
    path.write_bytes(buffer.getvalue())
    assert read_image_metadata(path) == ImageMetadata(width=24, height=16)


# --- decompression bombs and enormous metadata (BAD_INPUTS 10, 30) -------------------------------


class _PillowStateUnchanged:
    """Asserts that reading set no process-wide Pillow limit and raised no bomb warning."""

    def __enter__(self):
        self.before = (Image.MAX_IMAGE_PIXELS, PngImagePlugin.MAX_TEXT_CHUNK, PngImagePlugin.MAX_TEXT_MEMORY,
                       ImageFile.LOAD_TRUNCATED_IMAGES)  # fmt: skip
        self.warnings = warnings.catch_warnings(record=True)
        self.caught = self.warnings.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc_info):
        self.warnings.__exit__(*exc_info)
        after = (Image.MAX_IMAGE_PIXELS, PngImagePlugin.MAX_TEXT_CHUNK, PngImagePlugin.MAX_TEXT_MEMORY,
                 ImageFile.LOAD_TRUNCATED_IMAGES)  # fmt: skip
        assert after == self.before
        assert not [w for w in self.caught if issubclass(w.category, Image.DecompressionBombWarning)]


def _peak_memory_of(read) -> tuple[object, int]:
    tracemalloc.start()
    try:
        result = read()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_png_decompression_bomb_reads_size_and_parameters_without_decoding(tmp_path):
    """BAD_INPUTS 30: 100000 x 100000 pixels declared; the size and text still read, nothing allocated."""
    path = tmp_path / "bomb.png"
    path.write_bytes(
        png_bytes(chunk(b"tEXt", b"parameters\0a cat\nSteps: 1, Seed: 2, Size: 4x4"), width=100_000, height=100_000)
    )
    with _PillowStateUnchanged():
        metadata, peak = _peak_memory_of(lambda: read_image_metadata(path))
    assert (metadata.width, metadata.height, metadata.prompt) == (100_000, 100_000, "a cat")
    assert peak < 1_000_000


def test_jpeg_decompression_bomb(tmp_path):
    buffer = io.BytesIO()
    _image().save(buffer, "JPEG", exif=user_comment_exif(a1111_comment(INFOTEXT)))
    data = bytearray(buffer.getvalue())
    frame = data.index(b"\xff\xc0")
    data[frame + 5 : frame + 9] = struct.pack(">HH", 60_000, 65_000)  # height, width
    path = tmp_path / "bomb.jpg"
    path.write_bytes(bytes(data))
    with _PillowStateUnchanged():
        metadata, peak = _peak_memory_of(lambda: read_image_metadata(path))
    assert (metadata.width, metadata.height, metadata.infotext()) == (65_000, 60_000, INFOTEXT)
    assert peak < 1_000_000


def test_webp_decompression_bomb(tmp_path):
    buffer = io.BytesIO()
    _image().save(buffer, "WEBP", exif=user_comment_exif(a1111_comment(INFOTEXT)))
    data = bytearray(buffer.getvalue())
    canvas = data.index(b"VP8X") + 8 + 4
    data[canvas : canvas + 6] = (16383 - 1).to_bytes(3, "little") * 2
    path = tmp_path / "bomb.webp"
    path.write_bytes(bytes(data))
    with _PillowStateUnchanged():
        metadata, peak = _peak_memory_of(lambda: read_image_metadata(path))
    assert (metadata.width, metadata.height, metadata.infotext()) == (16383, 16383, INFOTEXT)
    assert peak < 1_000_000


def test_enormous_text_chunk_is_skipped_with_its_start_kept_for_show_raw(tmp_path):
    """BAD_INPUTS 10/30: a 24 MB parameters chunk (Pillow refuses > 1 MB): not parsed, little memory."""
    path = tmp_path / "huge.png"
    with path.open("wb") as file:
        file.write(png_bytes(chunk(b"tEXt", b"Software\0test"))[:-12])  # everything but IEND
        file.write(chunk(b"tEXt", b"parameters\0" + b"<b>x</b> " * (24 * 1024 * 1024 // 9)))
        file.write(chunk(b"IEND", b""))
    with _PillowStateUnchanged():
        metadata, peak = _peak_memory_of(lambda: read_image_metadata(path))
    assert not metadata.found
    assert metadata.raw.startswith("Software: test\nparameters: <b>x</b> <b>x</b>")
    assert len(metadata.raw) <= RAW_TEXT_LIMIT
    assert peak < 6_000_000


def test_compressed_text_bomb_stops_inflating_at_the_limit(tmp_path):
    """BAD_INPUTS 30: a zTXt chunk of ~200 KB that would inflate to 256 MB."""
    compressor = zlib.compressobj(9)
    block = b"a" * (1024 * 1024)
    compressed = b"".join(compressor.compress(block) for _ in range(256)) + compressor.flush()
    path = tmp_path / "zbomb.png"
    path.write_bytes(png_bytes(chunk(b"zTXt", b"parameters\0\0" + compressed)))
    metadata, peak = _peak_memory_of(lambda: read_image_metadata(path))
    assert not metadata.found
    assert metadata.raw == ("parameters: " + "a" * RAW_TEXT_LIMIT)[:RAW_TEXT_LIMIT]
    assert peak < 40_000_000


def test_many_compressed_text_bombs_share_one_budget(tmp_path):
    """BAD_INPUTS 30: 64 chunks of 16 MB each once inflated: reading stops inflating after the budget."""
    compressed = zlib.compress(b"b" * (16 * 1024 * 1024), 9)
    bombs = [chunk(b"zTXt", f"junk{index}".encode() + b"\0\0" + compressed) for index in range(64)]
    path = tmp_path / "zbombs.png"
    path.write_bytes(png_bytes(chunk(b"tEXt", b"parameters\0a cat\nSteps: 1, Seed: 2, Size: 4x4"), *bombs))
    metadata = read_image_metadata(path)
    assert (metadata.source, metadata.prompt) == ("a1111", "a cat")
    assert len(metadata.raw) < RAW_TEXT_LIMIT
