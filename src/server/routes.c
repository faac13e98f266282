/*
 * The route table: every endpoint the server answers, in one place. http.c matches a request's
 * path against the patterns ({name} matches one non-empty path segment), answers 405 with an
 * Allow header when the path matches but the method does not, and 404 when nothing matches. The
 * pattern is the `route` label of the HTTP metrics, so metrics never carry raw paths.
 */
#include "server/server.h"

const struct vg_route vg_routes[] = {
    {"GET", "/", vg_api_index, VG_BODY_NONE},
    {"GET", "/health", vg_api_health, VG_BODY_NONE},
    {"GET", "/metrics", vg_api_metrics, VG_BODY_NONE},
    {"GET", "/models", vg_api_models, VG_BODY_NONE},
    {"GET", "/models/{model}", vg_api_model_info, VG_BODY_NONE},
    {"POST", "/predict", vg_api_predict, VG_BODY_PREDICT},
    {"POST", "/models/{model}/predict", vg_api_predict, VG_BODY_PREDICT},
    {"POST", "/feedback", vg_api_feedback, VG_BODY_JSON},
    {"GET", "/v2", vg_api_v2_server, VG_BODY_NONE},
    {"GET", "/v2/health/live", vg_api_v2_live, VG_BODY_NONE},
    {"GET", "/v2/health/ready", vg_api_v2_ready, VG_BODY_NONE},
    {"GET", "/v2/models/{model}", vg_api_v2_model, VG_BODY_NONE},
    {"GET", "/v2/models/{model}/versions/{version}", vg_api_v2_model, VG_BODY_NONE},
    {"GET", "/v2/models/{model}/ready", vg_api_v2_model_ready, VG_BODY_NONE},
    {"GET", "/v2/models/{model}/versions/{version}/ready", vg_api_v2_model_ready, VG_BODY_NONE},
    {"POST", "/v2/models/{model}/infer", vg_api_v2_infer, VG_BODY_JSON},
    {"POST", "/v2/models/{model}/versions/{version}/infer", vg_api_v2_infer, VG_BODY_JSON},
    {"POST", "/v2/models/{model}/feedback", vg_api_feedback, VG_BODY_JSON},
    {"POST", "/v2/repository/index", vg_api_v2_repository_index, VG_BODY_JSON},
    {NULL, NULL, NULL, 0},
};
