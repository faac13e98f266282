#!/usr/bin/env bash
# Integration tests of image models (docs/image-models.md): the real `vigil serve` on a free port
# with a repository of small image classifiers whose answers are predictable from the image
# (tests/fixtures/gen_image_fixtures.py), over HTTP with curl and jq; image_url against a test
# HTTP server on loopback (tests/server/image_http_server.py).
#
# Covered: JPEG (RGB, grey, progressive, CMYK) and PNG (grey, grey+alpha, RGB, RGBA, palette,
# 16-bit); colour order (RGB, BGR); NCHW float32 mean_std and NHWC uint8 models; the eight EXIF
# orientations (JPEG APP1 and PNG eXIf); raw, multipart and base64 bodies; image_url (allowed
# loopback, redirects, private / link-local / mapped / loopback addresses refused before any
# connection, a redirect to a private address, too many redirects, size cap, timeout, bad
# schemes); a decompression-bomb PNG and JPEG, truncated and corrupt files, non-images, wrong
# content types, images sent to a tabular model: all 4xx (or 502/504) with messages, and a good
# request right after each; the load-time checks of the image config; exact metric counts;
# feedback on an image prediction; the options through flags, environment and config file.
#
# Usage: test_image.sh VIGIL PYTHON PROMTOOL WORK_DIR SOURCE_DIR
#   PYTHON must have numpy, onnx and PIL (Debian's /usr/bin/python3).
set -u

VIGIL=$1
PYTHON=$2
PROMTOOL=$3
WORK=$4
SRC=$5
HERE=$(cd "$(dirname "$0")" && pwd)
case $VIGIL in /*) ;; *) VIGIL=$PWD/$VIGIL ;; esac
case $SRC in /*) ;; *) SRC=$PWD/$SRC ;; esac
# shellcheck source=../lib.sh
. "$HERE/../lib.sh"
# shellcheck source=common.sh
. "$HERE/common.sh"

fresh_work_dir "$WORK"
"$PYTHON" "$SRC/tests/fixtures/gen_image_fixtures.py" fx >gen.log 2>&1 || {
    echo "FAIL: cannot generate the image fixtures:" >&2
    tail -5 gen.log >&2
    exit 1
}
make_test_repo tabular "$SRC" || exit 1
cp -r tabular/iris fx/repo/iris
IMG=$PWD/fx/img

# The image server on loopback.
python3 "$HERE/image_http_server.py" "$IMG" hport fetches.log &
HTTP_PID=$!
trap 'stop_all_servers; kill $HTTP_PID 2>/dev/null' EXIT
for _ in $(seq 100); do [ -s hport ] && break; sleep 0.1; done
HP=$(cat hport 2>/dev/null) || {
    echo "FAIL: the test image server did not start" >&2
    exit 1
}
HTTP=http://127.0.0.1:$HP

# expect_error NAME CODE PATTERN: status CODE and an {"error": ...} body matching PATTERN.
expect_error() {
    expect_code "$2" "$1"
    if jq -e --arg re "$3" '(.error | type == "string") and (.error | test($re))' resp.body \
        >/dev/null 2>&1; then ok; else
        bad "$1: error does not match /$3/: $(head -c 300 resp.body)"
    fi
}
# post_image PATH FILE [CONTENT_TYPE] [CURL ARGS]: the file as a raw body.
post_image() {
    local path=$1 file=$2 type=${3:-image/jpeg}
    shift 3 2>/dev/null || shift $#
    req POST "$path" -H "Content-Type: $type" --data-binary "@$IMG/$file" "$@"
}
# top2 A B: the answer's first two labels are A then B.
expect_top2() {
    expect_json "$1" "[.top_k[0].label, .top_k[1].label] == [\"$2\", \"$3\"]"
}
# good_after NAME: the server still answers a good image request.
good_after() {
    post_image /models/colors/predict red.jpg image/jpeg
    if [ "$STATUS" = 200 ] && jq -e '.predicted_label == "red"' resp.body >/dev/null 2>&1; then
        ok
    else
        bad "after $1: a good request got $STATUS $(head -c 200 resp.body)"
    fi
}
# refused_image FILE TYPE NAME CODE PATTERN [AFTER]: FILE posted to colors as TYPE is refused
# (expect_error NAME CODE PATTERN), then good_after AFTER (default NAME).
refused_image() {
    post_image /models/colors/predict "$1" "$2"
    expect_error "$3" "$4" "$5"
    good_after "${6:-$3}"
}
# refused_json JSON NAME CODE PATTERN: JSON posted to colors gets expect_error NAME CODE PATTERN.
refused_json() {
    post_json /models/colors/predict "$1"
    expect_error "$2" "$3" "$4"
}
# A well-formed answer: label, confidence == top_k[0], top_k sorted, confidences sum to <= 1.
check_answer() {
    expect_json "$1: answer shape" '(.predicted_label | type == "string") and
        (.confidence | type == "number") and (.top_k | type == "array") and
        .top_k[0].label == .predicted_label and .top_k[0].confidence == .confidence and
        ([.top_k[].confidence] | . == (sort | reverse)) and
        ([.top_k[].confidence] | add) <= 1.0001 and (.id | type == "string") and
        (.model | type == "string") and (.version == 1)'
}

server_start main --host 127.0.0.1 --port 0 --models fx/repo --threads 2 \
    --default-model colors --image-url-allow 127.0.0.0/8 --image-url-timeout-ms 1500 \
    --image-url-max-bytes 100K --max-body-bytes 64K --feedback-store 1000 || exit 1

# ---- Loading ------------------------------------------------------------------------------------
req GET /models
expect_json "models: image models loaded" '[.models[] | select(.loaded and
    .task == "image_classification") | .name] == ["colors", "colors_bgr", "colors_u8", "quad"]'
expect_json "models: iris still tabular" '.models[] | select(.name == "iris") |
    .task == "classification"'
expect_json "models: badimage reason" '.models[] | select(.name == "badimage") | (.loaded | not)
    and (.error | test("crop \\[16, 16\\]"))'
expect_json "models: badlabels reason" '.models[] | select(.name == "badlabels") | (.loaded | not)
    and (.error | test("3 labels but graph output .logits. has 4"))'
req GET /models/quad
expect_json "model info: image config" '.image.layout == "NHWC" and .top_k == 4 and
    .classes == ["top_left", "top_right", "bottom_left", "bottom_right"]'
grep -q "model colors version 1: an image model; drift monitoring does not apply" "$SERVER_LOG" &&
    ok || bad "drift: image models are not said to be outside drift monitoring"

# ---- Formats and colour order -------------------------------------------------------------------
for model in colors colors_bgr colors_u8; do
    for case in red.jpg:image/jpeg:red green_progressive.jpg:image/jpeg:green \
        blue.png:image/png:blue green_palette.png:image/png:green red_rgba.png:image/png:red \
        red_cmyk.jpg:image/jpeg:red blue16.png:image/png:blue; do
        IFS=: read -r file type want <<<"$case"
        post_image "/models/$model/predict" "$file" "$type" -H "X-Request-Id: $model-$file"
        expect_code 200 "$model $file"
        expect_json "$model $file: label" ".predicted_label == \"$want\" and
            .id == \"$model-$file\" and .model == \"$model\" and (.top_k | length) == 3"
        check_answer "$model $file"
    done
done

# ---- Geometry: grey decoding, alpha on white, 16-bit, EXIF orientation ---------------------------
for file in quad_grey.jpg quad_grey.png quad_rgb.png quad_ga.png quad16.png quad_alpha.png; do
    post_image /models/quad/predict "$file" image/png
    expect_code 200 "quad $file"
    expect_top2 "quad $file" top_left top_right
done
want=(x "top_left top_right" "top_right top_left" "bottom_right bottom_left"
    "bottom_left bottom_right" "top_left bottom_left" "top_right bottom_right"
    "bottom_right top_right" "bottom_left top_left")
for o in 1 2 3 4 5 6 7 8; do
    post_image /models/quad/predict "quad_exif$o.jpg" image/jpeg
    read -r a b <<<"${want[$o]}"
    expect_top2 "EXIF orientation $o (JPEG)" "$a" "$b"
done
post_image /models/quad/predict quad_exif6.png image/png
expect_top2 "EXIF orientation 6 (PNG eXIf)" top_right bottom_right

# ---- Request forms -------------------------------------------------------------------------------
req POST /models/colors/predict -F "file=@$IMG/blue.png" -F id=form-1 -F top_k=2
expect_code 200 "multipart"
expect_json "multipart: answer" '.predicted_label == "blue" and .id == "form-1" and
    (.top_k | length) == 2'
req POST /models/colors/predict -F "file=@$IMG/blue.png;type=application/octet-stream"
expect_json "multipart: part type ignored" '.predicted_label == "blue"'
post_json /models/colors/predict "{\"image_b64\": \"$(base64 -w0 "$IMG/green_palette.png")\"}"
expect_json "base64" '.predicted_label == "green"'
post_json /models/colors/predict \
    "{\"image_b64\": \"data:image/png;base64,$(base64 -w0 "$IMG/blue.png")\", \"id\": \"b64-1\", \"top_k\": 1}"
expect_json "base64 data URL, id, top_k" '.predicted_label == "blue" and .id == "b64-1" and
    (.top_k | length) == 1'
post_json /models/colors/predict "{\"image_b64\": \"$(base64 -w0 "$IMG/red.jpg" | tr '+/' '-_' | tr -d '=')\"}"
expect_json "base64url without padding" '.predicted_label == "red"'
post_image "/models/colors/predict?top_k=2" red.jpg image/jpeg
expect_json "?top_k=2" '(.top_k | length) == 2'
post_image "/models/colors/predict?top_k=99" red.jpg image/jpeg
expect_json "top_k above the class count" '(.top_k | length) == 3'
post_image /predict red.jpg image/jpeg
expect_json "/predict: the default image model" '.model == "colors" and .predicted_label == "red"'

# ---- Refusals, each followed by a good request ---------------------------------------------------
t0=$(date +%s%N)
post_image /models/colors/predict bomb.png image/png
t1=$(date +%s%N)
expect_error "bomb PNG" 413 "100000x100000 = 10000000000 pixels.*image-max-pixels.*not decoded"
[ $(((t1 - t0) / 1000000)) -lt 5000 ] && ok || bad "bomb PNG: took $(((t1 - t0) / 1000000)) ms"
good_after "bomb PNG"
refused_image bomb.jpg image/jpeg "bomb JPEG" 413 "60000x60000"
refused_image truncated.jpg image/jpeg "truncated JPEG" 400 "corrupt or truncated JPEG.*truncated"
refused_image truncated.png image/png "truncated PNG" 400 "corrupt or truncated PNG"
refused_image badcrc.png image/png \
    "PNG with a bad CRC" 400 "corrupt or truncated PNG.*CRC" "bad CRC"
refused_image notimage.txt image/jpeg "not an image" 415 "not a JPEG or PNG image"
refused_image solid.gif image/png "a GIF" 415 "not a JPEG or PNG image" "GIF"
refused_image red.jpg text/plain \
    "wrong content type" 415 "Content-Type must be application/json \\(or, for an image model"
req POST /models/colors/predict -H 'Content-Type: image/jpeg'
expect_error "empty image body" 400 "image \\(upload\\) is empty"
refused_json '{"image_b64": "not base64!"}' "bad base64" 400 "not valid base64"
refused_json '{"sepal_length": 5}' \
    "features to an image model" 400 "unknown key 'sepal_length'.*image model"
refused_json '{"image_url": "http://x/", "image_b64": "AAAA"}' \
    "both image_url and image_b64" 400 "either 'image_url' or 'image_b64'"
refused_json '{"image_b64": "AAAA", "top_k": 0}' "top_k 0" 400 "top_k"
post_image "/models/colors/predict?top_k=x" red.jpg image/jpeg
expect_error "?top_k=x" 400 "top_k"
req POST /models/colors/predict -F "image=@$IMG/red.jpg"
expect_error "multipart without file" 400 "no field 'file'"
req POST /models/colors/predict -H 'Content-Type: multipart/form-data; boundary=zz' --data-binary 'junk'
expect_error "malformed multipart" 400 "malformed multipart"
post_image /models/iris/predict red.jpg image/jpeg
expect_error "image to a tabular model" 415 "model 'iris' takes a JSON object of features.*image classification"
post_json /models/iris/predict "{\"image_url\": \"$HTTP/img/red.jpg\"}"
expect_error "image_url to a tabular model" 400 "not an image model"
good_after "tabular refusals"
# Body caps: image models take up to --image-max-body-bytes, the others --max-body-bytes (64K).
post_image /models/colors/predict noise.jpg image/jpeg
expect_code 200 "a 188 KB image above --max-body-bytes"
post_image /models/iris/predict noise.jpg image/jpeg
expect_code 413 "188 KB to a tabular model"
good_after "body caps"

# ---- image_url ------------------------------------------------------------------------------------
post_json /models/colors/predict "{\"image_url\": \"$HTTP/img/red.jpg\", \"id\": \"url-1\"}"
expect_code 200 "image_url on allowed loopback"
expect_json "image_url: answer" '.predicted_label == "red" and .id == "url-1"'
post_json /models/quad/predict "{\"image_url\": \"$HTTP/img/quad_exif8.jpg\"}"
expect_top2 "image_url: EXIF" bottom_left top_left
post_json /models/colors/predict "{\"image_url\": \"$HTTP/redirect/2\"}"
expect_json "image_url: 3 redirects" '.predicted_label == "red"'
refused_json "{\"image_url\": \"$HTTP/redirect/3\"}" \
    "image_url: 4 redirects" 502 "more than 3 redirects"
: >fetches.log
# "image_url refused: <address> is ..." comes only from the socket-opening hook, which refuses
# before connect(): no packet leaves for these addresses (and the log below shows the loopback
# image server saw none of them).
for addr in 10.0.0.1 169.254.169.254 '[::ffff:10.0.0.1]' '[fd00::1]' '[::1]' 0.0.0.0 224.0.0.1; do
    post_json /models/colors/predict "{\"image_url\": \"http://$addr:$HP/img/red.jpg\"}"
    expect_error "image_url $addr refused" 403 "image_url refused: .* is an? .*address"
done
refused_json "{\"image_url\": \"http://169.254.169.254/latest/meta-data/\"}" \
    "metadata address" 403 "169.254.169.254 is a link-local address"
post_json /models/colors/predict \
    "{\"image_url\": \"$HTTP/redirect?to=http://10.0.0.1:$HP/img/red.jpg\"}"
expect_error "redirect to a private address" 403 "10.0.0.1 is a private address"
if grep -q "^/img/red.jpg" fetches.log; then
    bad "a refused image_url reached the image server"
else ok; fi
good_after "SSRF refusals"
refused_json "{\"image_url\": \"$HTTP/img/noise.jpg\"}" \
    "image_url above the size cap" 413 "larger than 102400 bytes"
refused_json "{\"image_url\": \"$HTTP/status/404\"}" "image_url 404" 502 "answered HTTP 404"
t0=$(date +%s%N)
post_json /models/colors/predict "{\"image_url\": \"$HTTP/hang\"}"
t1=$(date +%s%N)
expect_error "image_url timeout" 504 "timed out"
ms=$(((t1 - t0) / 1000000))
[ "$ms" -ge 1400 ] && [ "$ms" -lt 8000 ] && ok || bad "image_url timeout after $ms ms, not ~1500"
good_after "timeout"
refused_json '{"image_url": "file:///etc/passwd"}' "file: URL" 400 "image_url"
refused_json '{"image_url": "ftp://127.0.0.1/x.jpg"}' "ftp: URL" 400 "only http and https"
refused_json "{\"image_url\": \"$HTTP/redirect?to=ftp://127.0.0.1/x\"}" \
    "redirect to ftp" 400 "only http and https"
refused_json '{"image_url": 7}' "image_url not a string" 400 "must be a string"
refused_json "{\"image_url\": \"$HTTP/img/notimage.txt\"}" \
    "image_url to a non-image" 415 "image_url: the data is not a JPEG or PNG"
good_after "URL errors"

# ---- Metrics: exact counts over one block on colors_u8 -------------------------------------------
scrape m0.prom
U=/models/colors_u8/predict
post_image $U red.jpg image/jpeg
post_image $U red_cmyk.jpg image/jpeg
post_image $U blue.png image/png
post_image $U truncated.jpg image/jpeg
post_image $U bomb.png image/png
post_image $U notimage.txt image/png
post_json $U '{"image_url": "http://10.0.0.1/x.jpg"}'
post_json $U '{"nothing": 1}'
scrape m1.prom
delta() { # NAME LABELS...: m1 - m0
    local a b
    a=$(metric m0.prom "$@")
    b=$(metric m1.prom "$@")
    [ "$a" = absent ] && a=0
    awk -v a="$a" -v b="$b" 'BEGIN { printf "%.15g", b - a }'
}
mv='model="colors_u8"'
for check in "vigil_model_requests_total outcome=\"success\" 3" \
    "vigil_model_requests_total outcome=\"bad_input\" 5" \
    "vigil_model_requests_total outcome=\"internal\" 0" \
    "vigil_model_rows_total - 3" \
    "vigil_model_predictions_total class=\"red\" 2" \
    "vigil_model_predictions_total class=\"blue\" 1" \
    "vigil_model_predictions_total class=\"green\" 0" \
    "vigil_model_inference_duration_seconds_count - 3" \
    "vigil_image_decode_seconds_count - 6" \
    "vigil_image_preprocess_seconds_count - 3" \
    "vigil_image_rejected_total reason=\"corrupt\" 1" \
    "vigil_image_rejected_total reason=\"too_many_pixels\" 1" \
    "vigil_image_rejected_total reason=\"unsupported_format\" 1" \
    "vigil_image_rejected_total reason=\"url_forbidden\" 1" \
    "vigil_image_rejected_total reason=\"bad_request\" 1" \
    "vigil_image_rejected_total reason=\"url_timeout\" 0"; do
    read -r name label want <<<"$check"
    if [ "$label" = - ]; then got=$(delta "$name" "$mv"); else got=$(delta "$name" "$mv" "$label"); fi
    expect_eq "metric $name $label" "$got" "$want"
done
expect_eq "metric: the rejection total" "$(metric m1.prom vigil_image_rejected_total "$mv")" 5
expect_eq "no drift series for image models" \
    "$(metric m1.prom vigil_feature_psi 'model="colors"')" absent
expect_eq "HTTP metrics: the route template" "$(metric m1.prom vigil_http_requests_total \
    'route="/models/{model}/predict"' 'code="413"' | awk '{ print ($1 >= 3) }')" 1
if command -v "$PROMTOOL" >/dev/null 2>&1; then
    if complaints=$("$PROMTOOL" check metrics <m1.prom 2>&1) && [ -z "$complaints" ]; then ok
    else bad "promtool check metrics: $complaints"; fi
else
    bad "promtool '$PROMTOOL' not found (scripts/install-deps.sh)"
fi

# ---- Feedback on an image prediction ----------------------------------------------------------
post_image /models/colors/predict blue.png image/png -H 'X-Request-Id: img-fb-1'
expect_json "feedback: the prediction" '.id == "img-fb-1" and .predicted_label == "blue"'
post_json /models/colors/predict "{\"image_url\": \"$HTTP/img/red.jpg\", \"id\": \"img-fb-2\"}"
post_json /feedback '{"id": "img-fb-1", "label": "blue"}'
expect_json "feedback: correct" '.outcome == "correct" and .model == "colors"'
post_json /feedback '{"id": "img-fb-2", "label": "green"}'
expect_json "feedback: the JSON id, incorrect" '.outcome == "incorrect"'
post_json /feedback '{"id": "img-fb-2", "label": "red"}'
expect_code 409 "feedback: already given"
scrape m2.prom
expect_eq "feedback metric" "$(metric m2.prom vigil_feedback_total 'model="colors"' \
    'outcome="correct"')" 1

server_stop
expect_eq "main server exit" "$SERVER_EXIT" 0
check_sanitizers "$SERVER_LOG" "main server"
grep -q "warn POST /models/colors/predict 403 .*10.0.0.1 is a private address" "$SERVER_LOG" &&
    ok || bad "the refusal of 10.0.0.1 was not logged"

# ---- The default configuration: loopback and private addresses refused ----------------------------
: >fetches.log
server_start default --host 127.0.0.1 --port 0 --models fx/repo --threads 1 || exit 1
for url in "$HTTP/img/red.jpg" "http://localhost:$HP/img/red.jpg" "http://10.0.0.1/x.jpg" \
    "http://169.254.169.254/latest/meta-data/"; do
    post_json /models/colors/predict "{\"image_url\": \"$url\"}"
    expect_error "default config: $url" 403 "is an? (loopback|private|link-local) address"
done
[ -s fetches.log ] && bad "default config: the image server was reached: $(cat fetches.log)" || ok
good_after "default-config refusals"
server_stop
check_sanitizers "$SERVER_LOG" "default server"

# ---- Options through the environment and a config file --------------------------------------------
echo '{"image-max-pixels": 1000, "image-url-allow": "127.0.0.1/32"}' >image.json
VIGIL_IMAGE_URL=off server_start opts --host 127.0.0.1 --port 0 --models fx/repo --threads 1 \
    --config image.json || exit 1
post_image /models/colors/predict red.jpg image/jpeg
expect_error "--image-max-pixels 1000 (config file)" 413 "48x40 = 1920 pixels, more than the limit of 1000"
refused_json "{\"image_url\": \"$HTTP/img/red.jpg\"}" \
    "VIGIL_IMAGE_URL=off" 403 "image_url is disabled"
post_image /models/quad/predict quad_grey.png image/png
expect_error "64x64 above the config file's cap" 413 "64x64 = 4096 pixels"
server_stop
expect_status 2 "bad --image-url-allow" -- "$VIGIL" serve --models fx/repo --image-url-allow 10.0.0.0/33
expect_err "image-url-allow: '10.0.0.0/33' is not a network" "bad --image-url-allow: message"
expect_status 2 "bad --image-url" -- "$VIGIL" serve --models fx/repo --image-url maybe
expect_status 0 "serve --help lists the image options" -- "$VIGIL" serve --help
for opt in image-max-pixels image-max-body-bytes image-url image-url-timeout-ms \
    image-url-connect-timeout-ms image-url-max-bytes image-url-max-redirects image-url-allow; do
    env_name=VIGIL_$(echo "$opt" | tr 'a-z-' 'A-Z_')
    if grep -q -- "--$opt " out.txt && grep -q -- "($env_name[;)]" out.txt; then ok; else
        bad "serve --help lacks --$opt or $env_name"
    fi
done

finish image
